// Frames that await a reply (sends and control requests), in the order they
// were made. An entry leaves when its reply arrives or the client gives up
// (a timeout, a withdrawn request, an ephemeral send whose socket dropped);
// after a reconnect everything still here is written again, in order and
// unchanged (a send keeps its `id`, so the broker answers duplicate:true for
// one it had already committed), but for a send first written longer ago
// than the broker remembers ids (calls.ts).
import type { ReplyFrame } from "./wire.ts";

export interface OutboxEntry {
  readonly reqId: string;
  /** The serialized frame, written as is on every (re)transmission. */
  readonly text: string;
  /** Connection generation this entry was last written on (0: never). */
  writtenOn: number;
  /** When (Date.now()) it was first written on a socket; null while never written. */
  firstWrittenAt: number | null;
  /**
   * Written at most once: an ephemeral send, which the broker keeps no id of
   * to recognize it again, so a second write could deliver a second copy.
   */
  readonly once?: boolean;
  /** A durable send's id: the broker may have stored it once it was written. */
  readonly sendId?: string;
  resolve(reply: ReplyFrame): void;
  reject(error: Error): void;
}

export class Outbox {
  private readonly entries = new Map<string, OutboxEntry>();

  add(entry: OutboxEntry): void {
    this.entries.set(entry.reqId, entry);
  }

  /** Removes and returns the entry a reply belongs to. */
  take(reqId: string): OutboxEntry | undefined {
    const entry = this.entries.get(reqId);
    if (entry) this.entries.delete(reqId);
    return entry;
  }

  inOrder(): OutboxEntry[] {
    return [...this.entries.values()];
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The largest frame written on connection `generation` (a send or a
   * request): the likeliest cause of a 1009 close (frame too large), which
   * would otherwise be written again on every socket.
   */
  largestWrittenOn(generation: number): OutboxEntry | undefined {
    let largest: OutboxEntry | undefined;
    for (const e of this.entries.values()) {
      if (e.writtenOn === generation && (!largest || e.text.length > largest.text.length)) largest = e;
    }
    return largest;
  }

  /** Removes and returns the entries written at most once (`once`) that were written on connection `generation`. */
  takeWrittenOnce(generation: number): OutboxEntry[] {
    const taken = [...this.entries.values()].filter((e) => e.once && e.writtenOn === generation);
    for (const e of taken) this.entries.delete(e.reqId);
    return taken;
  }

  failAll(error: Error): void {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const e of all) e.reject(error);
  }
}
