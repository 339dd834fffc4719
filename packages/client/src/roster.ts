// The mesh's live presences as presence events describe them. After a
// reconnect the broker sends a fresh snapshot; presences it no longer lists
// left while the socket was down, and are reported as left.
import type { PresenceEvent, PresenceInfo } from "./types.ts";

export class PresenceRoster {
  private readonly live = new Map<string, PresenceInfo>();
  private stale: Set<string> | null = null;

  /** A snapshot starts: every presence must be listed again to stay. */
  beginSnapshot(): void {
    this.stale = new Set(this.live.keys());
  }

  /** The snapshot is complete: returns the left events of those it did not list. */
  endSnapshot(): PresenceEvent[] {
    const gone = [...(this.stale ?? [])].flatMap((id) => {
      const info = this.live.get(id);
      this.live.delete(id);
      return info ? [{ ...info, event: "left" as const }] : [];
    });
    this.stale = null;
    return gone;
  }

  /** Applies an event; false when it tells nothing new (a snapshot repeating a known presence). */
  apply(event: PresenceEvent): boolean {
    const { event: kind, ...info } = event;
    this.stale?.delete(info.presenceId);
    if (kind === "left") return this.live.delete(info.presenceId);
    const known = this.live.get(info.presenceId);
    this.live.set(info.presenceId, info);
    return known === undefined || known.status !== info.status || kind === "status";
  }

  list(): PresenceInfo[] {
    return [...this.live.values()];
  }

  clear(): void {
    this.live.clear();
    this.stale = null;
  }
}
