// Frames of one connection are handled strictly in arrival order (the
// protocol promises it): each step is chained behind the previous one, so a
// send right behind a hello waits for it. Durable sends and acks may overlap: they enter their
// group commit in order without waiting for the previous commit, so the next
// frame can join the same batch. Any other frame waits for them first, so its
// effects still come after theirs.
export class FramePipeline {
  private tail: Promise<void> = Promise.resolve();
  private readonly overlapping = new Set<Promise<void>>();

  /** Runs the step after every earlier step; a step that throws is handed to onError and the chain goes on. */
  next(step: () => Promise<void>, onError: (error: unknown) => void): void {
    this.tail = this.tail.then(step).catch(onError);
  }

  /** From inside a step: lets work run on while later steps start. */
  overlap(work: Promise<void>): void {
    this.overlapping.add(work);
    void work.finally(() => this.overlapping.delete(work));
  }

  /** From inside a step: waits for all overlapping work to finish. */
  async settled(): Promise<void> {
    await Promise.all(this.overlapping);
  }
}
