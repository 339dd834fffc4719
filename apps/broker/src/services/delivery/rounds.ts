// One round at a time: a claim and its hand-out, or a recovery of missed
// leases (missed-leases.ts). A send's leases are handed out between rounds,
// never during one: a round may hold older deliveries of the same
// recipients, which go out first, so per-sender order holds.
export class Rounds {
  private current: Promise<void> | null = null;

  /**
   * The round under way, if any. Wait with `while (rounds.underWay) await
   * rounds.underWay`, and act in the same synchronous step as the last test:
   * an await between them would let another round start.
   */
  get underWay(): Promise<void> | null {
    return this.current;
  }

  /** Runs work as the one round under way, after those already under way or waiting. */
  async run(work: () => Promise<void>): Promise<void> {
    while (this.underWay) await this.underWay;
    const round = work();
    this.current = round;
    try {
      await round;
    } finally {
      if (this.current === round) this.current = null;
    }
  }
}
