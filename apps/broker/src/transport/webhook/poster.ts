// The outbound side of webhook recipients: one signed POST of a push batch
// to the configured URL (docs/http.md). Redirects are not followed; only a
// 2xx within the timeout is a success. A 429's or 503's Retry-After is read
// for the dispatcher, which waits at least that long before the next one.
// A request whose name the target check resolved goes to an address it
// approved, the name carried as the Host header and the TLS server name (the
// certificate is checked against it), so no second lookup can send it
// elsewhere; the next approved address is tried when one refuses the connection.
import {
  WEBHOOK_ATTEMPT_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  webhookSignature,
  webhookSignatureHeader,
  type PushBatch,
} from "@switchboard/protocol";
import { isIPv6 } from "node:net";
import type { WebhookPoster, WebhookRequest, WebhookResult } from "../../services/webhooks/request.ts";
import type { ApprovedAddresses } from "../../services/webhooks/target-policy.ts";
import { pushFrame } from "../ws/wire.ts";

export function createWebhookPoster(userAgent: string): WebhookPoster {
  return {
    async post(request: WebhookRequest, timeoutMs: number, signal: AbortSignal): Promise<WebhookResult> {
      const batch: PushBatch = { type: "push_batch", messages: request.messages.map((m) => pushFrame(m, m.attempt)) };
      const body = JSON.stringify(batch);
      // Signed afresh for every request, so a receiver can refuse stale ones.
      const timestamp = Math.floor(Date.now() / 1000);
      const signature = await webhookSignature(request.secret, timestamp, body);
      const timeout = AbortSignal.timeout(timeoutMs);
      const headers = {
        "content-type": "application/json",
        "user-agent": userAgent,
        [WEBHOOK_ATTEMPT_HEADER]: String(request.attempt),
        [WEBHOOK_SIGNATURE_HEADER]: webhookSignatureHeader(timestamp, signature),
      };
      const send = async ({ url, pinned }: Route): Promise<WebhookResult> => {
        try {
          const res = await fetch(url, {
            method: "POST",
            body,
            redirect: "manual",
            signal: AbortSignal.any([signal, timeout]),
            headers: pinned === null ? headers : { ...headers, host: pinned.host },
            ...(pinned === null ? {} : { tls: { serverName: pinned.hostname } }),
          });
          // Only the status counts (and a Retry-After with it); the body is not read.
          await res.body?.cancel().catch(() => {});
          if (res.status >= 200 && res.status < 300) return { outcome: "ok", status: res.status };
          const asked = res.status === 429 || res.status === 503 ? retryAfterMs(res.headers.get("retry-after"), Date.now()) : null;
          return { outcome: "http_error", status: res.status, ...(asked === null ? {} : { retryAfterMs: asked }) };
        } catch (error) {
          if (timeout.aborted) return { outcome: "timeout", status: null };
          return { outcome: "network", status: null, cause: networkCause(error) };
        }
      };
      const [first, ...others] = routes(request.url, request.connectTo);
      let result = await send(first);
      for (const route of others) {
        // Only a connection never made moves on: one that carried the request may have delivered it.
        if (result.outcome !== "network" || !NOT_CONNECTED.has(result.cause ?? "") || signal.aborted) break;
        result = await send(route);
      }
      return result;
    },
  };
}

/** Failures of the connection itself: the request never left, so the next approved address may take it. */
const NOT_CONNECTED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "EAFNOSUPPORT"]);

type Route = { url: URL; pinned: { host: string; hostname: string } | null };

/**
 * The URLs to try, in order: the webhook's own, or one per approved address
 * with its name replaced by the address (the name's host and hostname kept).
 */
function routes(target: string, connectTo: ApprovedAddresses | null): [Route, ...Route[]] {
  if (connectTo === null) return [{ url: new URL(target), pinned: null }];
  const [first, ...others] = connectTo;
  return [pinnedTo(target, first), ...others.map((address) => pinnedTo(target, address))];
}

function pinnedTo(target: string, address: string): Route {
  const url = new URL(target);
  const pinned = { host: url.host, hostname: url.hostname };
  url.hostname = isIPv6(address) ? `[${address}]` : address;
  return { url, pinned };
}

/** A Retry-After header's wait in ms: delay-seconds or an HTTP date (RFC 9110); null when absent or unreadable. */
export function retryAfterMs(value: string | null, now: number): number | null {
  const text = value?.trim() ?? "";
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Each of HTTP's date forms starts with the day's name; Date.parse alone would take "1.5" for a year.
  const at = /^[A-Za-z]{3,9},? /.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * A failed fetch's code (ECONNREFUSED, ENOTFOUND, a TLS error's), else its
 * name: never its message or path, which may carry the URL's credentials.
 */
function networkCause(error: unknown): string {
  if (error instanceof Error) {
    const code: unknown = (error as { code?: unknown }).code;
    return typeof code === "string" ? code : error.name;
  }
  return "unknown";
}
