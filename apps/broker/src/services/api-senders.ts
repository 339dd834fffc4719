// API tokens → the member each acts as, remembered for a few seconds, so an
// HTTP send costs no lookup of its own. A revocation (of the member or of
// one token) forgets it at once, here and (over the bus) on every instance;
// the time limit bounds what a missed notice can leave, and the statement
// that writes a send refuses a revoked member whatever this says.
import type { Database } from "@switchboard/db";
import { findApiSender, type ApiSender } from "../store/directory.ts";
import type { Clock } from "./timing.ts";
import { hashToken } from "./tokens.ts";

export interface ApiSendersOptions {
  ttlMs: number;
  maxEntries: number;
  clock: Clock;
}

export class ApiSenders {
  private readonly byHash = new Map<string, { sender: ApiSender; until: number }>();
  /** Revocations so far: a lookup that a revocation overtook is not remembered. */
  private forgotten = 0;

  constructor(
    private readonly db: Database,
    private readonly options: ApiSendersOptions,
  ) {}

  /** The member a token acts as; null for an unknown, revoked or non-API token (never remembered). */
  async find(token: string): Promise<ApiSender | null> {
    const hash = hashToken(token);
    const now = this.options.clock();
    const hit = this.byHash.get(hash);
    if (hit && hit.until > now) return hit.sender;
    this.byHash.delete(hash);
    const before = this.forgotten;
    const sender = await findApiSender(this.db, hash);
    // Read before a revocation committed, it answers this request only.
    if (sender === null || this.forgotten !== before) return sender;
    // The entry remembered longest goes first (a Map keeps insertion order).
    if (this.byHash.size >= this.options.maxEntries) this.byHash.delete(this.byHash.keys().next().value!);
    this.byHash.set(hash, { sender, until: now + this.options.ttlMs });
    return sender;
  }

  /** The member was revoked: none of its tokens may be taken from memory again. */
  forget(memberId: string): void {
    this.forgetWhere((sender) => sender.memberId === memberId);
  }

  /** One token was revoked: it may not be taken from memory again. */
  forgetToken(tokenId: string): void {
    this.forgetWhere((sender) => sender.tokenId === tokenId);
  }

  private forgetWhere(revoked: (sender: ApiSender) => boolean): void {
    this.forgotten++;
    for (const [hash, entry] of this.byHash) if (revoked(entry.sender)) this.byHash.delete(hash);
  }
}
