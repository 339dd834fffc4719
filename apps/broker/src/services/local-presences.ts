// This instance's live presences: the only in-memory state of the broker, a
// cache of what the presences table says about this instance. Each holds a
// link to its socket that the transport implements, so services push and end
// presences without knowing frames or close codes.
import type { OwedMessage } from "../store/queue/types.ts";
import type { PushWindow } from "./delivery/push-window.ts";
import { addTo, deleteFrom } from "./keyed-sets.ts";
import type { PresenceEventView } from "./presence-events.ts";

// The transport builds push frames from it and may not import the store.
export type { OwedMessage };

/** What became of a push handed to a socket. */
export type PushResult =
  /** Written out. */
  | "sent"
  /** Taken, but the socket's buffer is backing up: give it nothing more until it drains. */
  | "congested"
  /** Not taken (the socket is closed or its buffer is full): the push never left. */
  | "dropped";

/** Why the broker ends a presence's socket; the transport picks the close code. */
export type EndReason = "replaced" | "revoked" | "lease_lost" | "shutdown" | "stalled" | "expired";

export interface PresenceLink {
  push(message: OwedMessage, attempt: number): PushResult;
  /** An ephemeral send's message: no delivery stands behind it. */
  pushEphemeral(message: OwedMessage): PushResult;
  /** The pushes `write` makes leave in one write to the socket, not one each. */
  writeTogether<T>(write: () => T): T;
  /** A presence event of the presence's mesh, for a subscribed socket. */
  presenceEvent(event: PresenceEventView): void;
  end(reason: EndReason): void;
  /** Settles once every frame its socket has read so far is handled. */
  framesRead(): Promise<void>;
  /** The bytes its socket holds written and not yet taken by the peer. */
  unsentBytes(): number;
}

export interface LocalPresence {
  readonly presenceId: string;
  readonly memberId: string;
  readonly meshId: string;
  readonly pubkey: string;
  readonly sessionId: string;
  readonly displayName: string;
  readonly role: "member" | "observer";
  readonly link: PresenceLink;
  /** Pushes awaiting an ack. */
  readonly window: PushWindow;
  /** When a push first met backpressure (ms), until the socket drains; null while it keeps up. */
  congestedSince: number | null;
  /** Set once the socket closed: nothing is pushed to it any more. */
  ended: boolean;
  /** A JWT presence ends (`expired`) when its token does, in ms since the epoch. */
  readonly tokenExpiresAt?: number;
}

/** Whether anything may be pushed to the presence now, its push window aside. */
export const takesPushes = (presence: LocalPresence): boolean => !presence.ended && presence.congestedSince === null;

/** A session: a pubkey's session id (in whichever mesh). */
export const sessionKey = (pubkey: string, sessionId: string) => `${pubkey}\n${sessionId}`;

/** A member: its mesh and pubkey, as a send names it. */
const memberKey = (meshId: string, pubkey: string) => `${meshId}\n${pubkey}`;

export class LocalPresences {
  private readonly byPresence = new Map<string, LocalPresence>();
  private readonly byMember = new Map<string, Set<LocalPresence>>();
  private readonly bySession = new Map<string, Set<LocalPresence>>();
  private readonly byMemberKey = new Map<string, Set<LocalPresence>>();
  /**
   * Presences a push made engaged (pushes awaiting acks, or a socket backing
   * up) since they were last found at rest: the only ones that may not take
   * a push now, their member's pushes handed back aside
   * (delivery/unavailable.ts).
   */
  private readonly engagedSet = new Set<LocalPresence>();
  /** Presences whose socket is backed up (congestedSince set). */
  private readonly congestedSet = new Set<LocalPresence>();

  /** `backedUp` is told each time a write leaves a presence's socket holding bytes unsent. */
  constructor(private readonly backedUp: () => void = () => {}) {}

  add(presence: LocalPresence): void {
    this.byPresence.set(presence.presenceId, presence);
    addTo(this.byMember, presence.memberId, presence);
    addTo(this.bySession, sessionKey(presence.pubkey, presence.sessionId), presence);
    addTo(this.byMemberKey, memberKey(presence.meshId, presence.pubkey), presence);
  }

  remove(presence: LocalPresence): void {
    presence.ended = true;
    this.engagedSet.delete(presence);
    this.congestedSet.delete(presence);
    this.byPresence.delete(presence.presenceId);
    deleteFrom(this.byMember, presence.memberId, presence);
    deleteFrom(this.bySession, sessionKey(presence.pubkey, presence.sessionId), presence);
    deleteFrom(this.byMemberKey, memberKey(presence.meshId, presence.pubkey), presence);
  }

  get(presenceId: string): LocalPresence | undefined {
    return this.byPresence.get(presenceId);
  }

  ofMember(memberId: string): LocalPresence[] {
    return [...(this.byMember.get(memberId) ?? [])];
  }

  ofSession(pubkey: string, sessionId: string): LocalPresence[] {
    return [...(this.bySession.get(sessionKey(pubkey, sessionId)) ?? [])];
  }

  membersOfMesh(meshId: string): string[] {
    return [...this.byMember.entries()].filter(([, set]) => [...set].some((p) => p.meshId === meshId)).map(([id]) => id);
  }

  hasMember(memberId: string): boolean {
    return this.byMember.has(memberId);
  }

  /** Whether a presence of the mesh's member with that pubkey is here. */
  holds(meshId: string, pubkey: string): boolean {
    return this.byMemberKey.has(memberKey(meshId, pubkey));
  }

  all(): LocalPresence[] {
    return [...this.byPresence.values()];
  }

  /** A push opened in the presence's window, or pushes awaiting acks came back to it. */
  engage(presence: LocalPresence): void {
    if (this.byPresence.get(presence.presenceId) === presence) this.engagedSet.add(presence);
  }

  /** A presence whose socket is backing up gets no pushes until it drains. */
  markCongested(presence: LocalPresence, now: number): void {
    presence.congestedSince ??= now;
    if (this.byPresence.get(presence.presenceId) === presence) this.congestedSet.add(presence);
    this.engage(presence);
    this.backedUp();
  }

  /** The presence's socket caught up with its buffer. */
  relieve(presence: LocalPresence): void {
    presence.congestedSince = null;
    this.congestedSet.delete(presence);
  }

  engaged(): LocalPresence[] {
    return [...this.engagedSet];
  }

  /** The presence takes pushes and its window is idle: nothing keeps a push out until it is engaged again. */
  atRest(presence: LocalPresence): void {
    this.engagedSet.delete(presence);
  }

  /** Presences whose sockets have been backed up since before `since` (ms). */
  congestedSince(since: number): LocalPresence[] {
    return [...this.congestedSet].filter((p) => p.congestedSince !== null && p.congestedSince < since);
  }

  get size(): number {
    return this.byPresence.size;
  }
}
