// Acks, group-committed a frame at a time (one item, however many ids it
// carries). The acks of pushes a connection awaits are committed at once.
// Ids no push on the connection awaits — a late ack after a reconnect,
// another presence's push, or made-up ids — go through commits of their
// own at a bounded pace: each starts no sooner than the last one's duration
// after it ended, so a flood of them holds at most about half of one
// database connection, on the cores every other peer's messages need too.
import type { Database } from "@switchboard/db";
import { ackDeliveries, type Ack } from "../../store/queue/index.ts";
import { createGroupCommit, type GroupCommit } from "../group-commit.ts";
import { retryTransient } from "../retry.ts";

const MAX_ACKS_PER_COMMIT = 5000;
// Small enough that a flood's statements leave the database between them.
const MAX_LATE_ACKS_PER_COMMIT = 1000;

interface AckFrame {
  memberId: string;
  messageIds: string[];
}

/** Keyed by member, so one member's large frames never hold back another's acks. */
const byMember = (max: number) => ({ keyOf: (frame: AckFrame) => frame.memberId, weightOf: (frame: AckFrame) => frame.messageIds.length, max });

export class AckCommits {
  private readonly awaited: GroupCommit<AckFrame, void>;
  private readonly late: GroupCommit<AckFrame, void>;
  /** When the last late commit may be followed by the next (performance.now()). */
  private lateResumesAt = 0;
  /** Commits of awaited acks under way. */
  private readonly awaitedUnderWay = new Set<Promise<void>>();

  constructor(db: Database) {
    const write = async (frames: AckFrame[]) => {
      const acks: Ack[] = frames.flatMap(({ memberId, messageIds }) => messageIds.map((messageId) => ({ memberId, messageId })));
      await retryTransient(() => ackDeliveries(db.relaxed, acks));
      return frames.map(() => undefined);
    };
    this.awaited = createGroupCommit(write, MAX_ACKS_PER_COMMIT, byMember(MAX_ACKS_PER_COMMIT));
    this.late = createGroupCommit(
      async (frames: AckFrame[]) => {
        const wait = this.lateResumesAt - performance.now();
        if (wait > 0) await Bun.sleep(wait);
        const started = performance.now();
        try {
          return await write(frames);
        } finally {
          const ended = performance.now();
          this.lateResumesAt = ended + (ended - started);
        }
      },
      MAX_LATE_ACKS_PER_COMMIT,
      byMember(MAX_LATE_ACKS_PER_COMMIT),
    );
  }

  /** Resolves once both kinds of ids are committed. */
  async apply(memberId: string, awaited: string[], late: string[]): Promise<void> {
    const written = awaited.length > 0 ? this.awaited.submit({ memberId, messageIds: awaited }) : undefined;
    if (written) {
      this.awaitedUnderWay.add(written);
      const ended = () => void this.awaitedUnderWay.delete(written);
      written.then(ended, ended);
    }
    await Promise.all([written, late.length > 0 ? this.late.submit({ memberId, messageIds: late }) : undefined]);
  }

  /** Resolves once the acks of awaited pushes applied before this call are written, or failed. */
  async awaitedSoFar(): Promise<void> {
    await Promise.allSettled([...this.awaitedUnderWay]);
  }

  async drain(): Promise<void> {
    await Promise.all([this.awaited.drain(), this.late.drain()]);
  }
}
