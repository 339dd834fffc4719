// Presence events of the mesh and the live presences they describe. A
// subscription belongs to a socket, so after every reconnect the feed
// subscribes again; the broker's fresh snapshot ends where the pong of a
// ping sent behind the subscribe arrives (frames are answered in order),
// and the presences it no longer lists left while the socket was down. Only
// the latest renewal concludes: an earlier one whose socket dropped got its
// pong on a later socket, after a snapshot that was cut off.
import type { PresenceEvent, PresenceInfo } from "./types.ts";

export interface FeedLink {
  /** Sends a control frame and resolves with its reply. */
  request(frame: Record<string, unknown>): Promise<unknown>;
  ping(): Promise<unknown>;
  emit(event: PresenceEvent): void;
}

export class PresenceFeed {
  private readonly live = new Map<string, PresenceInfo>();
  /** Of the latest renewal: what the application was last told that its snapshot has not listed yet. */
  private unlisted: Set<string> | null = null;
  private wanted = false;

  constructor(private readonly link: FeedLink) {}

  list(): PresenceInfo[] {
    return [...this.live.values()];
  }

  async subscribe(): Promise<void> {
    this.wanted = true;
    await this.renew();
  }

  async unsubscribe(): Promise<void> {
    this.wanted = false;
    await this.link.request({ type: "unsubscribe", events: ["presence"] });
    this.live.clear();
    this.unlisted = null;
  }

  /** After a reconnect: subscribes on the new socket if the application had. */
  async reconnected(): Promise<void> {
    if (this.wanted) await this.renew();
  }

  /** An event from the broker; emitted unless it only repeats what is known (a snapshot after a reconnect). */
  receive(event: PresenceEvent): void {
    const { event: kind, ...info } = event;
    this.unlisted?.delete(info.presenceId);
    if (kind === "left") {
      if (this.live.delete(info.presenceId)) this.link.emit(event);
      return;
    }
    const known = this.live.get(info.presenceId);
    this.live.set(info.presenceId, info);
    if (known === undefined) this.link.emit(event);
    // A renewed snapshot lists as joined what the application knows already: its change is a status.
    else if (known.status !== info.status) this.link.emit({ ...info, event: "status" });
  }

  private async renew(): Promise<void> {
    const unlisted = new Set(this.live.keys());
    this.unlisted = unlisted;
    await this.link.request({ type: "subscribe", events: ["presence"] });
    await this.link.ping();
    // Superseded (a reconnect renewed again, or unsubscribed): the newer one decides.
    if (this.unlisted !== unlisted) return;
    this.unlisted = null;
    for (const id of unlisted) {
      const info = this.live.get(id);
      this.live.delete(id);
      if (info) this.link.emit({ ...info, event: "left" });
    }
  }
}
