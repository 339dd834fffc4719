// The peer list of a mesh as a peer sees it: members with their live presences.
import type { Database } from "@switchboard/db";
import type { PeersReply } from "@switchboard/protocol";
import { livePeersOfMesh } from "../store/presences.ts";
import { SharedReads } from "./shared-reads.ts";

export type Peer = PeersReply["peers"][number];

export class PeerDirectory {
  private readonly reads: SharedReads<string, Awaited<ReturnType<typeof livePeersOfMesh>>>;

  constructor(db: Database) {
    this.reads = new SharedReads((meshId) => livePeersOfMesh(db, meshId));
  }

  async list(meshId: string): Promise<Peer[]> {
    const rows = await this.reads.get(meshId);
    const byKey = new Map<string, Peer>();
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
