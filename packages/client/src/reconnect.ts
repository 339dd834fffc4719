// When a client tries to connect again: after a socket closed, or from the
// start for a client started in the background. Attempts follow the
// policy's backoff; sockets that close soon after their hello count as
// failed attempts, so a broker that accepts and drops is not retried at the
// shortest delay forever.
import { backoffDelay, isFinalHelloCode, type ReconnectPolicy } from "./backoff.ts";
import { asError, SwitchboardError } from "./errors.ts";

/** A socket that stayed open this long after its hello starts the backoff over when it closes. */
const STABLE_AFTER_MS = 10_000;

export interface ReconnectHooks {
  /** One attempt; resolves once its hello was accepted. */
  attempt(): Promise<void>;
  /** Whether the client has ended: no more attempts, no more waits. */
  ended(): boolean;
  /** Before each attempt after the first of a run. */
  retrying(): void;
  /** An attempt failed; `willRetry` false when it was the run's last (gaveUp follows). */
  failed(error: SwitchboardError, attempt: number, willRetry: boolean): void;
  /** Attempts ran out, or a refusal no retry can fix: the client ends with `final`. */
  gaveUp(final: SwitchboardError): void;
}

export class Reconnector {
  /** When the current socket's hello was accepted. */
  private openedAt = 0;
  /** Sockets in a row that closed within STABLE_AFTER_MS of their hello. */
  private shortLived = 0;
  private cancelPause: (() => void) | null = null;

  /** `policy` null, or maxAttempts 0: no reconnects (a started client still makes its one attempt). */
  constructor(
    private readonly policy: ReconnectPolicy | null,
    private readonly hooks: ReconnectHooks,
  ) {}

  /** Whether a closed socket is followed by attempts. */
  get enabled(): boolean {
    return this.policy !== null && this.policy.maxAttempts > 0;
  }

  /** A hello was accepted: the socket's life counts from now. */
  opened(): void {
    this.openedAt = Date.now();
  }

  /** Connects in the background, the first attempt at once. */
  start(): void {
    void this.run(true, 0);
  }

  /** The open socket closed: attempts after the backoff its short-lived predecessors earned. */
  closed(): void {
    const backedOff = Date.now() - this.openedAt < STABLE_AFTER_MS ? this.shortLived++ : (this.shortLived = 0);
    void this.run(false, backedOff);
  }

  /** The client ended: a wait under way ends now (its timer would outlive the client). */
  cancel(): void {
    this.cancelPause?.();
    this.cancelPause = null;
  }

  /**
   * `immediate`: the first attempt does not wait. `backedOff`: failed
   * attempts before this run, for the delays.
   */
  private async run(immediate: boolean, backedOff: number): Promise<void> {
    // Without reconnects (none, or maxAttempts 0) a started client still makes
    // its one attempt: with none at all it would end before anyone listened.
    const policy = this.enabled && this.policy !== null ? this.policy : { maxAttempts: 1, minDelayMs: 0, maxDelayMs: 0 };
    let last: SwitchboardError | undefined;
    for (let attempt = 0; attempt < policy.maxAttempts; attempt++) {
      if (attempt > 0) this.hooks.retrying();
      // A listener of that state may have closed the client.
      if (this.hooks.ended()) return;
      await this.pause(immediate && attempt === 0 ? 0 : backoffDelay(backedOff + (immediate ? attempt - 1 : attempt), policy));
      if (this.hooks.ended()) return;
      try {
        await this.hooks.attempt();
        return;
      } catch (error) {
        if (this.hooks.ended()) return;
        last = asError(error);
        const final = isFinalHelloCode(last.code) || attempt + 1 >= policy.maxAttempts;
        this.hooks.failed(last, attempt + 1, !final);
        // A listener of that failure may have closed the client.
        if (this.hooks.ended()) return;
        if (final) break;
      }
    }
    this.hooks.gaveUp(
      last && isFinalHelloCode(last.code) ? last : new SwitchboardError("closed", `gave up reconnecting: ${last?.message ?? "no attempts"}`),
    );
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.cancelPause = done;
    });
  }
}
