// Claude Code hook signals: a hashed bearer token names the member; the
// body names the session. A signal that arrives before its presence has
// connected is kept briefly and applied when the presence says hello.
import type { Database } from "@switchboard/db";
import { hookStatus, type HookBody, type HookReply } from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { findMemberByTokenHash } from "../store/admin.ts";
import { keepPendingSignal } from "../store/pending-hooks.ts";
import { findPresenceForHook } from "../store/presences.ts";
import { RateLimiter } from "./rate-limit.ts";
import type { StatusService } from "./status.ts";
import { hashToken } from "./tokens.ts";

export type HookResult = { httpStatus: 200 | 401 | 429; body: HookReply };

export class HookService {
  private readonly limiter: RateLimiter;

  constructor(
    private readonly db: Database,
    private readonly status: StatusService,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    rateLimitPerMin: number,
    /** How long a signal that found no presence waits for one to connect. */
    private readonly pendingSeconds: number,
  ) {
    this.limiter = new RateLimiter(rateLimitPerMin);
  }

  async handle(token: string, body: HookBody, headerPid: number | undefined): Promise<HookResult> {
    const tokenHash = hashToken(token);
    const pid = body.pid ?? headerPid;
    // The token first: a wrong one is a 401 however often it is tried.
    const member = await findMemberByTokenHash(this.db, tokenHash);
    if (!member) return { httpStatus: 401, body: { ok: false, error: "unauthorized" } };
    if (!this.limiter.allow(`${tokenHash} ${pid ?? "-"} ${body.cwd}`)) {
      this.metrics.hookRateLimited.inc();
      return { httpStatus: 429, body: { ok: false, error: "rate_limited" } };
    }

    const status = hookStatus(body);
    const match = { sessionId: body.session_id, pid, cwd: body.cwd };
    const presenceId = await findPresenceForHook(this.db, member.memberId, match);
    if (presenceId) {
      const result = await this.status.apply(presenceId, { status, source: "hook" });
      if (result) {
        this.log.info(
          { cwd: body.cwd, pid, status, presence_id: presenceId, applied: result.applied, pending: false },
          "hook",
        );
        return { httpStatus: 200, body: { ok: true, presence_id: presenceId } };
      }
    }
    await keepPendingSignal(
      this.db,
      { memberId: member.memberId, sessionId: body.session_id ?? null, pid: pid ?? null, cwd: body.cwd, status },
      this.pendingSeconds,
    );
    this.log.info({ cwd: body.cwd, pid, status, pending: true }, "hook");
    return { httpStatus: 200, body: { ok: true, pending: true } };
  }

  prune(): void {
    this.limiter.prune();
  }
}
