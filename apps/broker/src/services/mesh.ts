// Channel membership and the peer list, as a peer sees them.
import type { Database } from "@switchboard/db";
import type { PeersReply } from "@switchboard/protocol";
import { joinChannel, leaveChannel } from "../store/channels.ts";
import { livePeersOfMesh } from "../store/presences.ts";

export class MeshService {
  constructor(private readonly db: Database) {}

  join(meshId: string, channel: string, memberId: string): Promise<void> {
    return joinChannel(this.db, meshId, channel, memberId);
  }

  leave(meshId: string, channel: string, memberId: string): Promise<void> {
    return leaveChannel(this.db, meshId, channel, memberId);
  }

  async peers(meshId: string): Promise<PeersReply["peers"]> {
    const rows = await livePeersOfMesh(this.db, meshId);
    const byKey = new Map<string, PeersReply["peers"][number]>();
    for (const r of rows) {
      let peer = byKey.get(r.pubkey);
      if (!peer) byKey.set(r.pubkey, (peer = { pubkey: r.pubkey, displayName: r.displayName, presences: [] }));
      peer.presences.push({
        sessionId: r.sessionId,
        status: r.status,
        statusSource: r.statusSource,
        connectedAt: r.connectedAt,
      });
    }
    return [...byKey.values()];
  }
}
