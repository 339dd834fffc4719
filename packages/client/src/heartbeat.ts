// Finds a socket gone silent: one the broker dropped, or a network that
// stopped passing bytes, without the close reaching this end (a laptop that
// slept, a NAT that forgot the connection). Such a socket looks open for
// good, and a peer that only listens never writes on it to find out. Once
// nothing came from the broker for `everyMs`, a ping goes out; no answer
// within `everyMs` more and the socket is given up for a new one.

export interface HeartbeatHooks {
  /** Asks the broker for an answer; its answer (any frame) is heard(). */
  ping(): Promise<unknown>;
  /** Nothing came for `quietMs`, a ping's wait included: the socket is to be given up. */
  silent(quietMs: number): void;
}

export class Heartbeat {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastHeard = 0;
  /** Bumped by start() and stop(): a probe of an earlier socket changes nothing. */
  private round = 0;

  constructor(
    private readonly everyMs: number,
    private readonly hooks: HeartbeatHooks,
  ) {}

  /** A socket's hello was accepted: it is watched from now on. */
  start(): void {
    this.stop();
    this.heard();
    this.schedule(this.round, this.everyMs);
  }

  /** Something came from the broker. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  stop(): void {
    this.round++;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(round: number, ms: number): void {
    this.timer = setTimeout(() => void this.tick(round), ms);
  }

  private async tick(round: number): Promise<void> {
    const quiet = Date.now() - this.lastHeard;
    if (quiet < this.everyMs) return this.schedule(round, this.everyMs - quiet);
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const answered = this.hooks.ping().catch(() => {});
    await Promise.race([answered, new Promise<void>((resolve) => (deadline = setTimeout(resolve, this.everyMs)))]);
    clearTimeout(deadline);
    if (round !== this.round) return;
    const since = Date.now() - this.lastHeard;
    if (since < this.everyMs) return this.schedule(round, this.everyMs - since);
    this.hooks.silent(since);
  }
}
