// Who is who on the mesh: display names of senders, and the pubkey a name in
// send_message's `to` stands for. The live peer list answers for members
// online; names seen earlier and, with an admin token configured, the admin
// API's member list answer for members offline.
import type { PeerInfo, SwitchboardClient } from "@switchboard/client";
import { targetSpecSchema } from "@switchboard/protocol";
import { shortKey } from "../output.ts";
import { brokerTarget } from "../target.ts";
import { ToolError } from "./errors.ts";

export interface KnownMember {
  pubkey: string;
  displayName: string;
}

/**
 * How long a sender the lists did not name goes unnamed before they are
 * asked again: each asking spends a control frame of the member's rate limit
 * (a minute's worth), and a sender that is never online (an HTTP bot) would
 * otherwise cost one for every message.
 */
const MISS_MS = 60_000;
/** Unnamed senders remembered so; past it the one asked about longest ago is forgotten. */
const REMEMBERED_MISSES = 1_000;

export class PeerDirectory {
  private readonly names = new Map<string, string>();
  /** Senders the lists did not name, with when they were asked. */
  private readonly misses = new Map<string, number>();
  /** Senders shown by their key's first 8 hex digits, by those digits. */
  private readonly unnamed = new Map<string, string>();

  constructor(
    private readonly client: () => SwitchboardClient,
    /** Every active member of the mesh, when an admin token allows asking. */
    private readonly members: (() => Promise<KnownMember[]>) | undefined,
  ) {}

  async livePeers(): Promise<PeerInfo[]> {
    const peers = await this.client().listPeers();
    for (const p of peers) this.names.set(p.pubkey, p.displayName);
    return peers;
  }

  /**
   * The sender's display name, else the first 8 hex digits of its key
   * (remembered, so that a reply addressed to that name finds the key). The
   * lists are asked about a sender they did not name once per MISS_MS; a
   * list asked meanwhile (list_peers, a send by name) that names it names it.
   */
  async nameOf(pubkey: string): Promise<string> {
    const asked = this.misses.get(pubkey);
    const now = Date.now();
    if (!this.names.has(pubkey) && (asked === undefined || now - asked >= MISS_MS)) {
      await this.livePeers().catch(() => []);
      if (!this.names.has(pubkey)) await this.allMembers().catch(() => []);
      this.misses.delete(pubkey);
      if (!this.names.has(pubkey)) {
        this.misses.set(pubkey, now);
        const oldest = this.misses.keys().next();
        if (this.misses.size > REMEMBERED_MISSES && !oldest.done) this.misses.delete(oldest.value);
      }
    }
    const name = this.names.get(pubkey);
    if (name !== undefined) return name;
    const short = shortKey(pubkey);
    this.unnamed.set(short, pubkey);
    return short;
  }

  /** A target spec the broker takes: a pubkey (in lowercase), *, #channel and tag:x as given; anything else is a display name. */
  async resolve(to: string): Promise<string> {
    const spec = brokerTarget(to);
    if (spec !== undefined) {
      if (!targetSpecSchema.safeParse(spec).success) throw new ToolError("invalid", `"${to}" is not a valid target`);
      return spec;
    }
    const candidates = new Set<string>();
    // The admin API knows every member, online or not; without it (or when it fails) the live list and names seen so far.
    const everyone = this.members ? await this.allMembers().catch(() => undefined) : undefined;
    if (everyone) {
      for (const m of everyone) if (m.displayName === to) candidates.add(m.pubkey);
    } else {
      // The live list renews the names seen; a member seen online that has gone offline still bears its name, so a
      // name it shares with one online is as ambiguous as when both are online.
      await this.livePeers();
      for (const [key, name] of this.names) if (name === to) candidates.add(key);
    }
    // A sender no name was found for goes by its key's first 8 hex digits.
    const unnamed = this.unnamed.get(to);
    if (candidates.size === 0 && unnamed !== undefined) candidates.add(unnamed);
    const [only] = candidates;
    if (candidates.size === 1 && only !== undefined) return only;
    if (candidates.size > 1) {
      throw new ToolError("ambiguous_target", `${candidates.size} members are named "${to}"; send to one of their pubkeys: ${[...candidates].join(", ")}`);
    }
    // Names are compared exactly; a model that capitalised one ("Grace" for "grace") is told the name to use.
    const known = everyone ? everyone.map((m) => m.displayName) : [...this.names.values()];
    const folded = to.toLowerCase();
    const near = [...new Set(known.filter((name) => name.toLowerCase() === folded))];
    if (near.length > 0) {
      throw new ToolError("unknown_target", `no member named "${to}" (names are compared exactly): did you mean ${near.map((n) => `"${n}"`).join(" or ")}?`);
    }
    const hint = everyone ? "" : " (a member that is offline is found by name only once it was seen online; its pubkey always works)";
    throw new ToolError("unknown_target", `no member named "${to}"${hint}`);
  }

  private async allMembers(): Promise<KnownMember[]> {
    if (!this.members) return [];
    const members = await this.members();
    for (const m of members) this.names.set(m.pubkey, m.displayName);
    return members;
  }
}
