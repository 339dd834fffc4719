// Sends: the checks a send must pass (role, size, rate), then its write.
// Durable sends are group-committed (send-commits.ts); ephemeral sends are
// never stored (ephemeral.ts).
import type { Database } from "@switchboard/db";
import type { SendFrame } from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { NewMessage } from "../store/queue/index.ts";
import type { InstanceBus } from "./bus.ts";
import { pushEphemeral, type EphemeralContext } from "./ephemeral.ts";
import type { LocalPresence, LocalPresences } from "./local-presences.ts";
import { refuse, type Refusal } from "./outcome.ts";
import { RateLimiter } from "./rate-limit.ts";
import type { QueuedWork } from "./queued-work.ts";
import { SendCommits, unknownTarget, type CommitRefusalCode, type LocalPushes, type SendCommitOptions } from "./send-commits.ts";
import type { Clock } from "./timing.ts";

// Room for the fields a push adds around nonce and ciphertext.
export const PUSH_OVERHEAD_BYTES = 512;

// What a string takes in the push frame, whose JSON escapes it (U+0001 is 6
// bytes there, a newline or a quote 2): encoding the field alone is exact and
// spares encoding the whole frame; its quotes are the overhead's.
const jsonBytes = (value: string) => Buffer.byteLength(JSON.stringify(value)) - 2;
const pushBytes = (m: SendRequest) => jsonBytes(m.nonce) + jsonBytes(m.ciphertext) + jsonBytes(m.targetSpec);

export interface SendingOptions {
  maxMessageBytes: number;
  defaultTtlSeconds: number;
  sendRateLimitPerMin: number;
  /** Recipients a member's accepted sends may reach in a minute: a send to many costs what it writes. */
  sendRecipientsPerMin: number;
  instanceId: string;
  leaseSeconds: number;
  clock: Clock;
  dbHealth: SendCommitOptions["dbHealth"];
}

/** Who sends: a member of a mesh, with or without a socket. */
export type Sender = Pick<LocalPresence, "memberId" | "meshId" | "pubkey" | "role">;

export type SendRequest = Omit<SendFrame, "type" | "reqId">;

/** The commit's refusals (CommitRefusalCode), and those of the checks before it. */
export type SendRefusalCode = CommitRefusalCode | "too_large" | "rate_limited";

export type SendOutcome =
  | { ok: true; messageId: string; recipients: number; fullQueues: number; duplicate: boolean; queued: boolean }
  | (Refusal<SendRefusalCode> & { retryAfterSeconds?: number });

export interface SendExtras {
  /** The sender waits this long for a reply (HTTP ?wait=S): replies to this message are held for it. */
  replyWaitSeconds?: number;
}

export class SendService {
  private readonly limiter: RateLimiter;
  private readonly recipients: RateLimiter;
  private readonly commits: SendCommits;
  private readonly ephemeral: EphemeralContext;

  constructor(
    db: Database,
    presences: LocalPresences,
    pushes: LocalPushes,
    queuedWork: QueuedWork,
    bus: InstanceBus,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: SendingOptions,
  ) {
    this.limiter = new RateLimiter(options.sendRateLimitPerMin);
    this.recipients = new RateLimiter(options.sendRecipientsPerMin);
    this.commits = new SendCommits(db, pushes, queuedWork, bus, metrics, log, options);
    const { clock, instanceId } = options;
    this.ephemeral = { db, presences, clock, instanceId, crossInstance: bus.crossInstance, log };
  }

  prune(): void {
    this.limiter.prune(this.options.clock());
    this.recipients.prune(this.options.clock());
  }

  /** A refusal with the seconds until the limiter has room for the member again. */
  private rateLimited(limiter: RateLimiter, sender: Sender, message: string): Refusal<"rate_limited"> & { retryAfterSeconds: number } {
    const retryAfterSeconds = Math.max(1, Math.ceil(limiter.retryAfterMs(sender.memberId, this.options.clock()) / 1000));
    return { ...refuse("rate_limited", message), retryAfterSeconds };
  }

  async send(sender: Sender, request: SendRequest, extras: SendExtras = {}): Promise<SendOutcome> {
    const arrived = this.options.clock();
    const outcome = await this.decide(sender, request, extras);
    if (!outcome.ok) {
      this.metrics.messagesRejected.labels(outcome.code).inc();
      return outcome;
    }
    if (!outcome.duplicate) {
      this.metrics.messagesRouted.labels(request.priority).inc();
      if (outcome.queued) this.metrics.sendCommitSeconds.observe((this.options.clock() - arrived) / 1000);
    }
    return outcome;
  }

  private async decide(sender: Sender, request: SendRequest, extras: SendExtras): Promise<SendOutcome> {
    if (sender.role === "observer") return refuse("forbidden", "observers may not send");
    const bytes = pushBytes(request);
    const allowed = this.options.maxMessageBytes - PUSH_OVERHEAD_BYTES;
    if (bytes > allowed) {
      return refuse("too_large", `nonce, ciphertext and target are ${bytes} bytes in a push's JSON; at most ${allowed} fit (MAX_MESSAGE_BYTES less ${PUSH_OVERHEAD_BYTES})`);
    }
    // Checked first, so a send it refuses is not counted as a send either. A
    // send's recipients are known once it is written: they count from then,
    // so sends in flight together may pass the bound by their recipients.
    const now = this.options.clock();
    if (!this.recipients.fits(sender.memberId, now)) {
      return this.rateLimited(this.recipients, sender, `sends reached more than ${this.options.sendRecipientsPerMin} recipients in a minute`);
    }
    if (!this.limiter.allow(sender.memberId, now)) {
      return this.rateLimited(this.limiter, sender, `more than ${this.options.sendRateLimitPerMin} sends in a minute`);
    }
    const message: NewMessage = {
      id: crypto.randomUUID(),
      meshId: sender.meshId,
      senderId: sender.memberId,
      clientId: request.id ?? null,
      targetSpec: request.targetSpec,
      priority: request.priority,
      nonce: request.nonce,
      ciphertext: request.ciphertext,
      replyTo: request.replyTo ?? null,
      ttlSeconds: request.ttlSeconds ?? this.options.defaultTtlSeconds,
      replyWaitSeconds: extras.replyWaitSeconds ?? null,
    };
    if (request.ephemeral) {
      const delivered = await pushEphemeral(this.ephemeral, message, sender.pubkey);
      if (delivered === null) return unknownTarget(message.targetSpec);
      this.log.debug({ messageId: message.id, recipients: delivered }, "ephemeral send");
      this.recipients.record(sender.memberId, this.options.clock(), delivered);
      return { ok: true, messageId: message.id, recipients: delivered, fullQueues: 0, duplicate: false, queued: false };
    }
    const written = await this.commits.submit({ message, senderPubkey: sender.pubkey });
    if (!written.ok) return written;
    const { messageId, recipients, fullQueues, duplicate } = written;
    if (!duplicate) this.recipients.record(sender.memberId, this.options.clock(), recipients);
    return { ok: true, messageId, recipients, fullQueues, duplicate, queued: true };
  }
}
