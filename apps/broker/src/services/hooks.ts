// Claude Code hook signals: a hashed bearer token names the member; the
// body names the session. Applying the signal is the status module's job.
import type { Database } from "@switchboard/db";
import type { HookBody } from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { findMemberByTokenHash } from "../store/directory.ts";
import { refuse, type Refusal } from "./outcome.ts";
import { RateLimiter } from "./rate-limit.ts";
import { statusOfHook } from "./status/rules.ts";
import type { StatusService } from "./status/service.ts";
import type { Clock } from "./timing.ts";
import { hashToken } from "./tokens.ts";

export type HookOutcome = { ok: true; presenceId: string } | { ok: true; pending: true } | Refusal<"rate_limited">;

/** A hook token's member, and the token's hash its rate limits are counted by. */
export interface HookCaller {
  memberId: string;
  tokenHash: string;
}

export interface HookOptions {
  /** Per token, pid and cwd: one Claude Code session. */
  rateLimitPerMin: number;
  /** Per token whatever pid and cwd it names, so varying them dodges nothing. */
  rateLimitPerTokenPerMin: number;
  clock: Clock;
}

export class HookService {
  private readonly perSession: RateLimiter;
  private readonly perToken: RateLimiter;

  constructor(
    private readonly db: Database,
    private readonly status: StatusService,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: HookOptions,
  ) {
    this.perSession = new RateLimiter(options.rateLimitPerMin);
    this.perToken = new RateLimiter(options.rateLimitPerTokenPerMin);
  }

  /** The member a hook token names; null for an unknown or revoked token (looked at before the body, so a bad token is told so). */
  async authenticate(token: string): Promise<HookCaller | null> {
    const tokenHash = hashToken(token);
    const member = await findMemberByTokenHash(this.db, tokenHash, "hook");
    return member ? { memberId: member.memberId, tokenHash } : null;
  }

  async handle(caller: HookCaller, body: HookBody, headerPid: number | undefined): Promise<HookOutcome> {
    const { memberId, tokenHash } = caller;
    const pid = body.pid ?? headerPid ?? null;
    const now = this.options.clock();
    const sessionKey = `${tokenHash} ${pid ?? "-"} ${body.cwd}`;
    // The session's own limit first, counting nothing: a session refused for
    // looping must not spend the token's share of the other sessions.
    if (this.perSession.exhausted(sessionKey, now)) {
      this.metrics.hookRateLimited.inc();
      return refuse("rate_limited", `more than ${this.options.rateLimitPerMin} hook requests a minute from this session`);
    }
    if (!this.perToken.allow(tokenHash, now)) {
      this.metrics.hookRateLimited.inc();
      return refuse("rate_limited", `more than ${this.options.rateLimitPerTokenPerMin} hook requests a minute with this token`);
    }
    this.perSession.allow(sessionKey, now);

    const status = statusOfHook(body);
    const origin = { sessionId: body.session_id ?? null, pid, cwd: body.cwd };
    const signalled = await this.status.signalFromHook(memberId, origin, status);
    if (signalled.pending) {
      this.log.info({ cwd: body.cwd, pid, status, pending: true }, "hook");
      return { ok: true, pending: true };
    }
    const { presenceId, applied } = signalled.result;
    this.log.info({ cwd: body.cwd, pid, status, presence_id: presenceId, applied, pending: false }, "hook");
    return { ok: true, presenceId };
  }

  prune(): void {
    const now = this.options.clock();
    this.perSession.prune(now);
    this.perToken.prune(now);
  }
}
