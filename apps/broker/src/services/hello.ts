// Admitting a peer: signature, clock window, membership, replay guard,
// session replacement and mesh capacity, all decided in one transaction.
import type { Database, Executor } from "@switchboard/db";
import { helloSigningText, verifyText, type HelloErrorCode, type HelloFrame } from "@switchboard/protocol";
import { findHelloMember, lockMesh, recordHelloSignature } from "../store/hello.ts";
import { takePendingSignal } from "../store/pending-hooks.ts";
import { disconnectPresences, endSession, insertPresenceWithinCap, type PresenceRef } from "../store/presences.ts";
import { retryTransient } from "./batcher.ts";
import type { Wakeups } from "./wakeups.ts";

const CLOCK_WINDOW_MS = 60_000;
// A signature older than the clock window is refused anyway; keep a margin.
const REPLAY_GUARD_SECONDS = 2 * 60 + 10;

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

export type HelloOutcome = { ok: true; presence: AdmittedPresence } | { ok: false; code: HelloErrorCode; message: string };

class Refusal extends Error {
  constructor(
    readonly code: HelloErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export class HelloService {
  constructor(
    private readonly db: Database,
    private readonly wakeups: Wakeups,
    private readonly instanceId: string,
    private readonly maxConnectionsPerMesh: number,
  ) {}

  async admit(hello: HelloFrame, now = Date.now()): Promise<HelloOutcome> {
    if (Math.abs(now - hello.timestamp) > CLOCK_WINDOW_MS) {
      return { ok: false, code: "timestamp_skew", message: "timestamp is more than 60 s away from the broker's clock" };
    }
    const text = helloSigningText(hello.meshId, hello.pubkey, hello.sessionId, hello.timestamp);
    if (!(await verifyText(hello.pubkey, hello.signature, text))) {
      return { ok: false, code: "bad_signature", message: "the signature does not verify for this pubkey" };
    }
    try {
      const presence = await retryTransient(() => this.db.transaction((tx) => this.admitIn(tx, hello)));
      return { ok: true, presence };
    } catch (error) {
      if (error instanceof Refusal) return { ok: false, code: error.code, message: error.message };
      throw error;
    }
  }

  // Everything that needs no lock comes first; the mesh's row lock is held
  // only for the replacement, the capped insert and the commit.
  private async admitIn(tx: Executor, hello: HelloFrame): Promise<AdmittedPresence> {
    const member = await findHelloMember(tx, hello.meshId, hello.pubkey);
    if (!member || member.revoked) throw new Refusal("unauthorized", "not a member of that mesh");
    if (!(await recordHelloSignature(tx, hello.signature, REPLAY_GUARD_SECONDS))) {
      throw new Refusal("replayed", "this hello was already used");
    }
    const signalled = await takePendingSignal(tx, {
      memberId: member.memberId,
      sessionId: hello.sessionId,
      pid: hello.pid ?? null,
      cwd: hello.cwd ?? null,
    });
    const presenceId = crypto.randomUUID();
    const displayName = hello.displayName ?? member.displayName;

    await lockMesh(tx, member.meshId);
    const replaced = await endSession(tx, member.memberId, hello.sessionId);
    if (replaced) {
      await disconnectPresences(tx, [replaced.id]);
      if (replaced.instanceId !== this.instanceId) {
        await this.wakeups.publish(tx, { close: [{ presenceId: replaced.id, code: 4000, reason: "replaced" }] });
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
        signalled,
      },
      this.maxConnectionsPerMesh,
      { presenceId, sessionId: hello.sessionId, instanceId: this.instanceId, replaced: replaced?.id ?? null },
    );
    if (!admitted) throw new Refusal("capacity", `the mesh has ${this.maxConnectionsPerMesh} live connections already`);
    return {
      presenceId,
      memberId: member.memberId,
      meshId: member.meshId,
      displayName,
      role: member.role,
      status: signalled ?? "idle",
      replaced,
    };
  }
}
