// Admitting a peer: its credential (a signature with clock window and
// replay guard, or a JWT that may enrol it), membership, session replacement
// and mesh capacity, all decided in one transaction.
import type { Database, Executor } from "@switchboard/db";
import {
  helloSigningText,
  verifyText,
  type HelloErrorCode,
  type HelloFrame,
  type JwtHelloFrame,
  type SignedHelloFrame,
} from "@switchboard/protocol";
import { findMesh, insertMember } from "../store/directory.ts";
import { findHelloMember, lockMesh, recordHelloSignature, skewFromDatabaseClock, type HelloMember } from "../store/hello.ts";
import { disconnectPresences, endSession, insertPresenceWithinCap, type PresenceRef } from "../store/presences.ts";
import { UUID } from "../store/sql.ts";
import { takePendingSignal } from "../store/status.ts";
import type { InstanceBus } from "./bus.ts";
import type { JwtClaims, JwtVerifier } from "./jwt.ts";
import { refuse, RefusedError, type Refusal } from "./outcome.ts";
import type { PresenceChange, PresenceEvents } from "./presence-events.ts";
import { retryTransient } from "./retry.ts";
import { initialStatus } from "./status/rules.ts";

const CLOCK_WINDOW_MS = 60_000;
// A signature is refused by the clock window once its timestamp is this far
// behind; keep it in the replay guard a little longer than that.
const REPLAY_GUARD_MS = CLOCK_WINDOW_MS + 10_000;

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

export type HelloOutcome = { ok: true; presence: AdmittedPresence } | Refusal<HelloErrorCode>;

/** A checked credential: how to find (or enrol) its member inside the admitting transaction. */
type Credential =
  | { ok: true; member: (tx: Executor) => Promise<HelloMember>; tokenExpiresAt: number | null }
  | Refusal<HelloErrorCode>;

const refused = (code: HelloErrorCode, message: string) => new RefusedError(refuse<HelloErrorCode>(code, message));

export class HelloService {
  constructor(
    private readonly db: Database,
    private readonly bus: InstanceBus,
    private readonly jwt: JwtVerifier,
    private readonly events: PresenceEvents,
    private readonly instanceId: string,
    private readonly maxConnectionsPerMesh: number,
  ) {}

  async admit(hello: HelloFrame): Promise<HelloOutcome> {
    const credential = "jwt" in hello ? await this.vouchedBy(hello) : await this.signedBy(hello);
    if (!credential.ok) return credential;
    try {
      const { presence, changes } = await retryTransient(() =>
        this.db.transaction(async (tx) => this.admitIn(tx, hello, await credential.member(tx), credential.tokenExpiresAt)),
      );
      this.events.deliver(changes);
      return { ok: true, presence };
    } catch (error) {
      if (error instanceof RefusedError) return error.refusal as Refusal<HelloErrorCode>;
      throw error;
    }
  }

  private async signedBy(hello: SignedHelloFrame): Promise<Credential> {
    const text = helloSigningText(hello.meshId, hello.pubkey, hello.sessionId, hello.timestamp);
    if (!(await verifyText(hello.pubkey, hello.signature, text))) {
      return refuse("bad_signature", "the signature does not verify for this pubkey");
    }
    return { ok: true, member: (tx) => this.signedMember(tx, hello), tokenExpiresAt: null };
  }

  private async vouchedBy(hello: JwtHelloFrame): Promise<Credential> {
    const verified = await this.jwt.verify(hello.jwt);
    if (!verified.ok) return verified;
    const { claims } = verified;
    if (claims.pubkey !== hello.pubkey) return refuse("unauthorized", "the token is for another pubkey");
    return { ok: true, member: (tx) => this.jwtMember(tx, hello, claims), tokenExpiresAt: claims.expiresAt };
  }

  // The clock window and the replay guard's expiry use the database's clock,
  // so instances whose own clocks differ open no window for a replay.
  private async signedMember(tx: Executor, hello: SignedHelloFrame): Promise<HelloMember> {
    if ((await skewFromDatabaseClock(tx, hello.timestamp)) > CLOCK_WINDOW_MS) {
      throw refused("timestamp_skew", "timestamp is more than 60 s away from the broker's clock");
    }
    const member = await findHelloMember(tx, hello.meshId, hello.pubkey);
    if (!member || member.revoked) throw refused("unauthorized", "not a member of that mesh");
    if (!(await recordHelloSignature(tx, hello.signature, hello.timestamp, REPLAY_GUARD_MS))) {
      throw refused("replayed", "this hello was already used");
    }
    return member;
  }

  /** The token's member; a pubkey seen for the first time is enrolled (a revoked one never comes back). */
  private async jwtMember(tx: Executor, hello: JwtHelloFrame, claims: JwtClaims): Promise<HelloMember> {
    const mesh = await findMesh(tx, hello.meshId, UUID.test(hello.meshId));
    if (!mesh) throw refused("unauthorized", "no such mesh");
    if (claims.mesh !== mesh.id && claims.mesh !== mesh.slug) throw refused("unauthorized", "the token is for another mesh");
    let member = await findHelloMember(tx, mesh.id, hello.pubkey);
    if (!member) {
      // A concurrent first hello of the same pubkey may enrol it first: then this one finds it.
      await insertMember(tx, mesh.id, {
        pubkey: hello.pubkey,
        displayName: claims.name ?? hello.pubkey.slice(0, 8),
        tags: claims.tags,
        role: "member",
      });
      member = await findHelloMember(tx, mesh.id, hello.pubkey);
    }
    if (!member || member.revoked) throw refused("unauthorized", "this pubkey was revoked from the mesh");
    return member;
  }

  // The mesh's row lock is held only for the replacement, the capped insert and the commit.
  private async admitIn(
    tx: Executor,
    hello: HelloFrame,
    member: HelloMember,
    tokenExpiresAt: number | null,
  ): Promise<{ presence: AdmittedPresence; changes: PresenceChange[] }> {
    const pending = await takePendingSignal(tx, {
      memberId: member.memberId,
      sessionId: hello.sessionId,
      pid: hello.pid ?? null,
      cwd: hello.cwd ?? null,
    });
    const status = initialStatus(pending);
    const presenceId = crypto.randomUUID();
    const displayName = hello.displayName ?? member.displayName;

    await lockMesh(tx, member.meshId);
    const replaced = await endSession(tx, member.memberId, hello.sessionId);
    const changes: PresenceChange[] = [];
    if (replaced) {
      changes.push({ presenceId: replaced.id, event: "left" });
      await disconnectPresences(tx, [replaced.id]);
      if (replaced.instanceId !== this.instanceId) {
        await this.bus.publish(tx, { close: [{ presenceId: replaced.id, reason: "replaced" }] });
      }
    }
    const admitted = await insertPresenceWithinCap(
      tx,
      {
        id: presenceId,
        meshId: member.meshId,
        memberId: member.memberId,
        instanceId: this.instanceId,
        sessionId: hello.sessionId,
        pid: hello.pid ?? null,
        cwd: hello.cwd ?? null,
        displayName,
        status: status.status,
        statusSource: status.source,
        statusIsSignal: status.isSignal,
      },
      this.maxConnectionsPerMesh,
      { presenceId, sessionId: hello.sessionId, instanceId: this.instanceId, replaced: replaced?.id ?? null },
    );
    if (!admitted) throw refused("capacity", `the mesh has ${this.maxConnectionsPerMesh} live connections already`);
    changes.push({ presenceId, event: "joined" });
    await this.events.announce(tx, changes);
    return {
      presence: {
        presenceId,
        memberId: member.memberId,
        meshId: member.meshId,
        displayName,
        role: member.role,
        status: status.status,
        replaced,
        tokenExpiresAt,
      },
      changes,
    };
  }
}
