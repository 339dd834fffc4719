// One webhook request as the dispatcher asks for it and learns its outcome;
// the transport makes it (transport/webhook/poster.ts).
import type { LeasedDelivery } from "../../store/queue/index.ts";
import type { WebhookOutcome } from "../../store/webhooks.ts";
import type { ApprovedAddresses } from "./target-policy.ts";

export interface WebhookRequest {
  url: string;
  secret: string;
  /** X-Switchboard-Attempt: consecutive failures + 1. */
  attempt: number;
  messages: LeasedDelivery[];
  /**
   * The addresses the target check approved for the URL's name: the request
   * connects to the first that takes the connection, with the name as its
   * Host and TLS server name, and never looks the name up again. Null: the
   * URL as it is (target-policy.ts).
   */
  connectTo: ApprovedAddresses | null;
}

export interface WebhookResult {
  outcome: WebhookOutcome;
  /** The HTTP status, when there was an answer. */
  status: number | null;
  /** The wait a 429 or 503 asked for (Retry-After), in ms. */
  retryAfterMs?: number;
  /** Why a `network` failure failed, for the log: the system's code (ECONNREFUSED, ENOTFOUND, a TLS error's), never the URL. */
  cause?: string;
}

/** The outbound request, implemented by the transport. */
export interface WebhookPoster {
  post(request: WebhookRequest, timeoutMs: number, signal: AbortSignal): Promise<WebhookResult>;
}
