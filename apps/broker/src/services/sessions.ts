// This instance's live presences and their sockets: the only in-memory state
// of the broker, a cache of what the presences table says about this instance.
export interface SocketLike {
  send(text: string): unknown;
  close(code?: number, reason?: string): void;
}

export interface LocalPresence {
  readonly presenceId: string;
  readonly memberId: string;
  readonly meshId: string;
  readonly pubkey: string;
  readonly sessionId: string;
  readonly displayName: string;
  readonly role: "member" | "observer";
  readonly socket: SocketLike;
  /** Pushed and not yet acknowledged: message id → when its lease ends (ms). */
  readonly inflight: Map<string, number>;
  closed: boolean;
}

export class SessionRegistry {
  private readonly byPresence = new Map<string, LocalPresence>();
  private readonly byMember = new Map<string, Set<LocalPresence>>();

  add(presence: LocalPresence): void {
    this.byPresence.set(presence.presenceId, presence);
    let set = this.byMember.get(presence.memberId);
    if (!set) this.byMember.set(presence.memberId, (set = new Set()));
    set.add(presence);
  }

  remove(presence: LocalPresence): void {
    presence.closed = true;
    this.byPresence.delete(presence.presenceId);
    const set = this.byMember.get(presence.memberId);
    set?.delete(presence);
    if (set?.size === 0) this.byMember.delete(presence.memberId);
  }

  get(presenceId: string): LocalPresence | undefined {
    return this.byPresence.get(presenceId);
  }

  ofMember(memberId: string): LocalPresence[] {
    return [...(this.byMember.get(memberId) ?? [])];
  }

  membersOfMesh(meshId: string): string[] {
    return [...this.byMember.entries()].filter(([, set]) => [...set].some((p) => p.meshId === meshId)).map(([id]) => id);
  }

  hasMember(memberId: string): boolean {
    return this.byMember.has(memberId);
  }

  all(): LocalPresence[] {
    return [...this.byPresence.values()];
  }

  get size(): number {
    return this.byPresence.size;
  }
}
