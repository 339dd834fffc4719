// Admitting peers: their credential (a signature with clock window and
// replay guard, or a JWT that may enrol its pubkey), membership, session
// replacement, and the caps on live presences per member and per mesh.
// Hellos are group-committed: signatures and tokens are checked as they come,
// and the hellos that arrive while a batch is being admitted are admitted
// together in the next transaction, so a storm of connections costs a few
// statements per batch, not per hello.
import type { Database, Executor } from "@switchboard/db";
import {
  helloAudienceSigningText,
  helloSigningText,
  verifyText,
  type HelloErrorCode,
  type HelloFrame,
  type SignedHelloFrame,
} from "@switchboard/protocol";
import {
  enrolVouched,
  lockMeshes,
  resolveHellos,
  restorePendingSignal,
  revokedAmong,
  takePendingSignals,
  unenrol,
  type HelloRequest,
} from "../store/hello.ts";
import { disconnectPresences, endSessions, insertPresencesWithinCap, type PresenceCaps, type PresenceRef } from "../store/presences.ts";
import type { InstanceBus } from "./bus.ts";
import type { RecentEnds } from "./recent-ends.ts";
import { createGroupCommit } from "./group-commit.ts";
import type { HelloRate } from "./hello-rate.ts";
import type { JwtClaims, JwtVerifier } from "./jwt.ts";
import { sessionKey } from "./local-presences.ts";
import { refuse, type Refusal } from "./outcome.ts";
import type { PresenceChange, PresenceEvents } from "./presence-events.ts";
import { retryTransient } from "./retry.ts";
import { initialStatus } from "./status/rules.ts";

const CLOCK_WINDOW_MS = 60_000;
// A signature is refused by the clock window once its timestamp is this far
// behind; keep it in the replay guard a little longer than that.
const REPLAY_GUARD_MS = CLOCK_WINDOW_MS + 10_000;
const MAX_HELLOS_PER_COMMIT = 200;

export interface AdmittedPresence {
  presenceId: string;
  memberId: string;
  meshId: string;
  displayName: string;
  role: "member" | "observer";
  status: "idle" | "working" | "dnd";
  /** The presence this one replaced (same member and session), if any. */
  replaced: PresenceRef | null;
  /** A JWT hello's exp (ms since the epoch): the socket closes with 4001 then. Null for a signed hello. */
  tokenExpiresAt: number | null;
}

/** A hello whose credential was checked: a signed one, or a JWT one with its token's claims. */
export interface CheckedHello {
  hello: HelloFrame;
  claims: JwtClaims | null;
  /** Whether the socket that sent it has gone (its hello waited too long, or the peer left). */
  abandoned: () => boolean;
}

/** `meshFull`: refused because the mesh is full, which is not the client's doing (its address is not charged). */
export type HelloOutcome = { ok: true; presence: AdmittedPresence } | (Refusal<HelloErrorCode> & { meshFull?: true });

/** One hello's answer from its batch: an outcome, or the error of its own transaction (thrown to its caller alone). */
type Admitted = HelloOutcome | { failed: unknown };

/** Splits a batch so that no two hellos of one session share a transaction (the later one replaces the earlier). */
function bySession(checked: CheckedHello[]): number[][] {
  const groups: Array<{ keys: Set<string>; idx: number[] }> = [];
  checked.forEach(({ hello: h }, i) => {
    // Not by meshId: one mesh named by its id and by its slug is still one session.
    const key = sessionKey(h.pubkey, h.sessionId);
    let group = groups.find((g) => !g.keys.has(key));
    if (!group) groups.push((group = { keys: new Set(), idx: [] }));
    group.keys.add(key);
    group.idx.push(i);
  });
  return groups.map((g) => g.idx);
}

export class HelloService {
  private readonly commits;

  constructor(
    private readonly db: Database,
    private readonly bus: InstanceBus,
    private readonly jwt: JwtVerifier,
    private readonly events: PresenceEvents,
    private readonly instanceId: string,
    private readonly caps: PresenceCaps,
    private readonly rate: HelloRate,
    /** Where the presences a hello replaced are told to the sweep. */
    private readonly endedPresences: RecentEnds,
    /** HELLO_AUDIENCES: a signed hello must name one of these; null, any or none. */
    private readonly audiences: ReadonlySet<string> | null,
  ) {
    this.commits = createGroupCommit<CheckedHello, Admitted>((hellos) => this.admitAll(hellos), MAX_HELLOS_PER_COMMIT);
  }

  /** The hello's credential: its signature, or its JWT for its pubkey. The clock window and the replay guard are the admission's. */
  async check(
    hello: HelloFrame,
    abandoned: () => boolean = () => false,
  ): Promise<{ ok: true; checked: CheckedHello } | Refusal<HelloErrorCode>> {
    if ("jwt" in hello) {
      const verified = await this.jwt.verify(hello.jwt);
      if (!verified.ok) return verified;
      if (verified.claims.pubkey !== hello.pubkey) return refuse("unauthorized", "the token is for another pubkey");
      return { ok: true, checked: { hello, claims: verified.claims, abandoned } };
    }
    const text = helloSigningText(hello.meshId, hello.pubkey, hello.sessionId, hello.timestamp);
    if (!(await verifyText(hello.pubkey, hello.signature, text))) {
      return refuse("bad_signature", "the signature does not verify for this pubkey");
    }
    const named = await this.checkAudience(hello);
    return named ?? { ok: true, checked: { hello, claims: null, abandoned } };
  }

  // Both signatures are checked: the replay guard keys on the first, so one
  // left unchecked beside a good second would let a hello be used again.
  private async checkAudience(hello: SignedHelloFrame): Promise<Refusal<HelloErrorCode> | null> {
    const { audience, audienceSignature } = hello;
    if (audience !== undefined && audienceSignature !== undefined) {
      const text = helloAudienceSigningText(audience, hello.meshId, hello.pubkey, hello.sessionId, hello.timestamp);
      if (!(await verifyText(hello.pubkey, audienceSignature, text))) {
        return refuse("bad_signature", "the audience signature does not verify for this pubkey");
      }
    }
    if (this.audiences === null) return null;
    if (audience === undefined) {
      return refuse("unauthorized", "this broker admits only hellos signed for one of its names (an audience): this one names none; upgrade the SDK");
    }
    if (!this.audiences.has(audience)) return refuse("unauthorized", `this hello was signed for ${audience}, which is not one of this broker's names`);
    return null;
  }

  /** Admits a checked hello, in a batch with the hellos that come meanwhile. */
  async admit(checked: CheckedHello): Promise<HelloOutcome> {
    const result = await this.commits.submit(checked);
    if ("failed" in result) throw result.failed;
    return result;
  }

  // A hello whose socket went while it waited for its batch is not admitted:
  // its peer has moved on, maybe to a new socket of the same session on
  // another instance, which admitting it now would replace (4000) for good.
  private async admitAll(all: CheckedHello[]): Promise<Admitted[]> {
    const outcomes: Admitted[] = new Array(all.length);
    const live: number[] = [];
    all.forEach((c, i) => {
      if (c.abandoned()) outcomes[i] = refuse("hello_timeout", "the socket closed before its hello was admitted");
      else live.push(i);
    });
    const checked = live.map((i) => all[i]!);
    for (const group of bySession(checked)) {
      const batch = group.map((i) => checked[i]!);
      try {
        const admitted = await retryTransient(() => this.db.transaction((tx) => this.admitIn(tx, batch)));
        this.rate.admitted(admittedMembers(admitted.outcomes));
        this.events.deliver(admitted.changes);
        // The sessions it replaced, committed ended: their leases are looked for again (recent-ends.ts).
        this.endedPresences.add(admitted.changes.filter((c) => c.event === "left").map((c) => c.presenceId));
        group.forEach((i, j) => (outcomes[live[i]!] = admitted.outcomes[j]!));
      } catch (error) {
        // Only this transaction's hellos failed: those committed in the
        // batch's other transactions stand, and are answered so.
        for (const i of group) outcomes[live[i]!] = { failed: error };
      }
    }
    return outcomes;
  }

  // Everything that needs no lock comes first; the meshes' row locks are held
  // only for the replacements, the capped insert and the commit. The clock
  // window and the replay guard's expiry use the database's clock, so
  // instances whose own clocks differ open no window for a replay.
  private async admitIn(tx: Executor, checked: CheckedHello[]): Promise<{ outcomes: HelloOutcome[]; changes: PresenceChange[] }> {
    const enrolled = await enrolVouched(
      tx,
      checked.flatMap(({ hello: h, claims }) =>
        claims === null
          ? []
          : [{ meshRef: h.meshId, claimMesh: claims.mesh, pubkey: h.pubkey, displayName: claims.name ?? h.pubkey.slice(0, 8), tags: claims.tags }],
      ),
    );
    const admitted = await this.admitEnrolled(tx, checked);
    // A refused hello leaves nothing behind: a pubkey its token enrolled just
    // now is no member unless one of its hellos got in (a full mesh refuses).
    const present = new Set(admittedMembers(admitted.outcomes));
    await unenrol(tx, enrolled.filter((id) => !present.has(id)));
    return admitted;
  }

  private async admitEnrolled(tx: Executor, checked: CheckedHello[]): Promise<{ outcomes: HelloOutcome[]; changes: PresenceChange[] }> {
    const hellos = checked.map((c) => c.hello);
    const requests: HelloRequest[] = hellos.map((h, idx) => ({
      idx,
      meshRef: h.meshId,
      pubkey: h.pubkey,
      sessionId: h.sessionId,
      pid: h.pid ?? null,
      cwd: h.cwd ?? null,
      timestamp: "jwt" in h ? null : h.timestamp,
      signature: "jwt" in h ? null : h.signature,
      claimMesh: checked[idx]!.claims?.mesh ?? null,
    }));
    const resolved = await resolveHellos(tx, requests, CLOCK_WINDOW_MS, REPLAY_GUARD_MS);
    const unauthorized = (idx: number) =>
      refuse("unauthorized", checked[idx]!.claims ? "the token's mesh or pubkey is not admitted there" : "not a member of that mesh");
    // Settled for the admitted ones once their meshes are locked (below).
    const statuses = resolved.map((r) => initialStatus(null, r.previous));
    const outcomes: HelloOutcome[] = resolved.map((r) => {
      if (r.verdict === "timestamp_skew") return refuse("timestamp_skew", "timestamp is more than 60 s away from the broker's clock");
      if (r.verdict === "unauthorized") return unauthorized(r.idx);
      if (r.verdict === "replayed") return refuse("replayed", "this hello was already used");
      const h = hellos[r.idx]!;
      return {
        ok: true,
        presence: {
          presenceId: crypto.randomUUID(),
          memberId: r.memberId!,
          meshId: r.meshId!,
          // A JWT hello's page may not rename it: the name is the one its backend vouched for.
          displayName: checked[r.idx]!.claims === null ? (h.displayName ?? r.displayName!) : r.displayName!,
          role: r.role!,
          status: statuses[r.idx]!.status,
          replaced: null,
          tokenExpiresAt: checked[r.idx]!.claims?.expiresAt ?? null,
        },
      };
    });
    const resolving = outcomes.flatMap((o, idx) => (o.ok ? [{ idx, presence: o.presence }] : []));
    if (resolving.length === 0) return { outcomes, changes: [] };

    await lockMeshes(tx, [...new Set(resolving.map((p) => p.presence.meshId))]);
    const revoked = await revokedAmong(tx, [...new Set(resolving.map((p) => p.presence.memberId))]);
    for (const p of resolving) if (revoked.has(p.presence.memberId)) outcomes[p.idx] = unauthorized(p.idx);
    const unrevoked = resolving.filter((p) => !revoked.has(p.presence.memberId));
    // Refused before it ends the session it names: a hello past the member's rate replaces nothing.
    const within = this.rate.within(unrevoked.map((p) => p.presence.memberId));
    for (const [j, p] of unrevoked.entries()) {
      if (!within[j]) outcomes[p.idx] = refuse("capacity", `this member was admitted ${this.rate.perMinute} hellos in a minute already`);
    }
    const passing = unrevoked.filter((_, j) => within[j]);
    if (passing.length === 0) return { outcomes, changes: [] };
    // Taken before the sessions' presences are locked, in the order a hook's
    // own look at a kept signal locks the two.
    const pending = await takePendingSignals(
      tx,
      passing.map(({ idx, presence }) => {
        const h = hellos[idx]!;
        return { idx, memberId: presence.memberId, sessionId: h.sessionId, pid: h.pid ?? null, cwd: h.cwd ?? null };
      }),
    );
    const ended = await endSessions(
      tx,
      passing.map(({ idx, presence }) => ({ memberId: presence.memberId, sessionId: hellos[idx]!.sessionId })),
    );
    await disconnectPresences(tx, ended.map((e) => e.id));
    const replacedElsewhere = ended.filter((e) => e.instanceId !== this.instanceId);
    if (replacedElsewhere.length > 0) {
      await this.bus.publish(tx, { close: replacedElsewhere.map((e) => ({ presenceId: e.id, reason: "replaced" as const })) });
    }
    for (const p of passing) {
      const e = ended.find((x) => x.memberId === p.presence.memberId && x.sessionId === hellos[p.idx]!.sessionId);
      if (e) p.presence.replaced = { id: e.id, instanceId: e.instanceId };
      // A replaced presence's status is read under its row's lock, after any
      // hook that changed it while this batch waited for its meshes: newer
      // than the status resolveHellos saw.
      const previous = e ? { status: e.status, source: e.statusSource, ageMs: e.ageMs } : resolved[p.idx]!.previous;
      statuses[p.idx] = initialStatus(pending.get(p.idx) ?? null, previous);
      p.presence.status = statuses[p.idx]!.status;
    }

    const { inserted, memberFull } = await insertPresencesWithinCap(
      tx,
      passing.map(({ idx, presence }) => {
        const h = hellos[idx]!;
        const status = statuses[idx]!;
        return {
          id: presence.presenceId,
          meshId: presence.meshId,
          memberId: presence.memberId,
          instanceId: this.instanceId,
          sessionId: h.sessionId,
          pid: h.pid ?? null,
          cwd: h.cwd ?? null,
          displayName: presence.displayName,
          status: status.status,
          statusSource: status.source,
          statusAgeMs: status.ageMs,
          replaced: presence.replaced?.id ?? null,
        };
      }),
      this.caps,
    );
    for (const p of passing) {
      if (inserted.has(p.presence.presenceId)) continue;
      outcomes[p.idx] = memberFull.has(p.presence.presenceId)
        ? refuse("capacity", `this member has ${this.caps.perMember} live connections already`)
        : { ...refuse("capacity", `the mesh has ${this.caps.perMesh} live connections already`), meshFull: true };
      // The hook signal this hello took waits again for the next try.
      const signal = pending.get(p.idx);
      if (signal !== undefined) await restorePendingSignal(tx, p.presence.memberId, signal);
    }
    // A replaced session is told as left before its successor joins.
    const changes: PresenceChange[] = [
      ...ended.map((e) => ({ presenceId: e.id, event: "left" as const })),
      ...passing.filter((p) => inserted.has(p.presence.presenceId)).map((p) => ({ presenceId: p.presence.presenceId, event: "joined" as const })),
    ];
    await this.events.announce(tx, changes);
    return { outcomes, changes };
  }
}

/** The members of the hellos admitted. */
function admittedMembers(outcomes: HelloOutcome[]): string[] {
  return outcomes.flatMap((o) => (o.ok ? [o.presence.memberId] : []));
}
