// Admitting a peer: signature, clock window, membership, replay guard,
// session replacement and mesh capacity, all decided in one transaction.
import type { Database, Executor } from "@switchboard/db";
import { helloSigningText, verifyText, type HelloErrorCode, type HelloFrame } from "@switchboard/protocol";
import { findHelloMember, lockMesh, recordHelloSignature, skewFromDatabaseClock } from "../store/hello.ts";
import { disconnectPresences, endSession, insertPresenceWithinCap, type PresenceRef } from "../store/presences.ts";
import { takePendingSignal } from "../store/status.ts";
import type { InstanceBus } from "./bus.ts";
import { refuse, RefusedError, type Refusal } from "./outcome.ts";
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
}

export type HelloOutcome = { ok: true; presence: AdmittedPresence } | Refusal<HelloErrorCode>;

export class HelloService {
  constructor(
    private readonly db: Database,
    private readonly bus: InstanceBus,
    private readonly instanceId: string,
    private readonly maxConnectionsPerMesh: number,
  ) {}

  async admit(hello: HelloFrame): Promise<HelloOutcome> {
    const text = helloSigningText(hello.meshId, hello.pubkey, hello.sessionId, hello.timestamp);
    if (!(await verifyText(hello.pubkey, hello.signature, text))) {
      return refuse("bad_signature", "the signature does not verify for this pubkey");
    }
    try {
      const presence = await retryTransient(() => this.db.transaction((tx) => this.admitIn(tx, hello)));
      return { ok: true, presence };
    } catch (error) {
      if (error instanceof RefusedError) return error.refusal as Refusal<HelloErrorCode>;
      throw error;
    }
  }

  // Everything that needs no lock comes first; the mesh's row lock is held
  // only for the replacement, the capped insert and the commit. The clock
  // window and the replay guard's expiry use the database's clock, so
  // instances whose own clocks differ open no window for a replay.
  private async admitIn(tx: Executor, hello: HelloFrame): Promise<AdmittedPresence> {
    if ((await skewFromDatabaseClock(tx, hello.timestamp)) > CLOCK_WINDOW_MS) {
      throw new RefusedError(refuse<HelloErrorCode>("timestamp_skew", "timestamp is more than 60 s away from the broker's clock"));
    }
    const member = await findHelloMember(tx, hello.meshId, hello.pubkey);
    if (!member || member.revoked) throw new RefusedError(refuse<HelloErrorCode>("unauthorized", "not a member of that mesh"));
    if (!(await recordHelloSignature(tx, hello.signature, hello.timestamp, REPLAY_GUARD_MS))) {
      throw new RefusedError(refuse<HelloErrorCode>("replayed", "this hello was already used"));
    }
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
    if (replaced) {
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
    if (!admitted) {
      throw new RefusedError(refuse<HelloErrorCode>("capacity", `the mesh has ${this.maxConnectionsPerMesh} live connections already`));
    }
    return {
      presenceId,
      memberId: member.memberId,
      meshId: member.meshId,
      displayName,
      role: member.role,
      status: status.status,
      replaced,
    };
  }
}
