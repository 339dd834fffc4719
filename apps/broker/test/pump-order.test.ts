// The socket pump's hand-out order, against a real database with sockets
// whose answers the test writes: a push that went back to the queue (its
// socket dropped it, or its window was full) is not overtaken by a later
// message a send statement had leased to the same presence before the push
// came back. The broker's tests cannot time a socket's drain or an ack to
// fall between two hand-outs; here the test decides what each push meets.
import { describe, expect, test } from "bun:test";
import { toQuery, type Database, type Statement } from "@switchboard/db";
import { backendKind, waitUntil } from "@switchboard/testkit";
import postgres from "postgres";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { DeliveryPump } from "../src/services/delivery/pump.ts";
import { PushWindow } from "../src/services/delivery/push-window.ts";
import { LocalPresences, type LocalPresence, type PushResult } from "../src/services/local-presences.ts";
import { enqueueSends, type LeasedDelivery } from "../src/store/queue/index.ts";
import { newMessage, useBackendDatabase, useScratchDatabase } from "./support/scratch-db.ts";

const INSTANCE = "pump-order";
const LEASE_SECONDS = 600;

const scratch = useScratchDatabase("pump-order");

interface Stage {
  pump: DeliveryPump;
  /** The recipient's presence; `second` is another of the same member on the same instance, live when asked for. */
  presence: LocalPresence;
  second: LocalPresence;
  presences: LocalPresences;
  /** Message ids in the order the sockets took them (either presence's). */
  taken: string[];
  /** The attempt each push a socket took carried, by message id. */
  attempts: Map<string, number>;
  /** What the first presence's socket does with each next push; "sent" once the script runs out. */
  script: PushResult[];
  /** Sends from one sender to the presences' member, each in a statement of its own, leased by it to `to` (default the first presence). */
  send(count: number, to?: LocalPresence): Promise<LeasedDelivery[]>;
}

/** `db`: the scratch database unless given (a Postgres one, for a test that holds rows from another connection). */
async function stage(windowSize: number, options: { second?: boolean; leaseSeconds?: number; db?: Database } = {}): Promise<Stage> {
  const leaseSeconds = options.leaseSeconds ?? LEASE_SECONDS;
  const db = options.db ?? scratch.db;
  const one = async <T>(query: ReturnType<typeof sql>) => (await db.rows<T>(query))[0]!;
  const slug = `m-${crypto.randomUUID()}`;
  const mesh = await one<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES (${slug}, ${slug}) RETURNING id`);
  const member = (name: string) =>
    one<{ id: string; pubkey: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${mesh.id}, ${crypto.randomUUID()}, ${name})
      RETURNING id, pubkey`);
  const sender = await member("sender");
  const recipient = await member("recipient");

  const taken: string[] = [];
  const attempts = new Map<string, number>();
  const script: PushResult[] = [];
  const presenceOf = async (sessionId: string, results: PushResult[]): Promise<LocalPresence> => {
    const row = await one<{ id: string }>(sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
      VALUES (${mesh.id}, ${recipient.id}, ${INSTANCE}, ${sessionId}, 'recipient') RETURNING id`);
    return {
      presenceId: row.id,
      memberId: recipient.id,
      meshId: mesh.id,
      pubkey: recipient.pubkey,
      sessionId,
      displayName: "recipient",
      role: "member",
      link: {
        push(message, attempt) {
          const result = results.shift() ?? "sent";
          if (result !== "dropped") {
            taken.push(message.messageId);
            attempts.set(message.messageId, attempt);
          }
          return result;
        },
        pushEphemeral() {
          throw new Error("the pump pushes no ephemeral message");
        },
        writeTogether: (write) => write(),
        presenceEvent() {},
        end() {},
        framesRead: async () => {},
        unsentBytes: () => 0,
      },
      window: new PushWindow(windowSize, leaseSeconds, Date.now),
      congestedSince: null,
      ended: false,
    };
  };
  const presence = await presenceOf("s", script);
  const second = await presenceOf("s2", []);
  const presences = new LocalPresences();
  presences.add(presence);
  if (options.second) presences.add(second);
  else await db.rows(sql`UPDATE presences SET disconnected_at = now() WHERE id = ${second.presenceId}`);
  const log = createLogger("silent", {});
  const pump = new DeliveryPump(db, presences, new InstanceBus(db, log), createMetrics(), log, {
    leaseSeconds,
    clock: Date.now,
  });

  const send = async (count: number, to = presence): Promise<LeasedDelivery[]> => {
    const leased: LeasedDelivery[] = [];
    for (let i = 0; i < count; i++) {
      const message = newMessage(mesh.id, sender.id, recipient.pubkey);
      const others = [presence, second].filter((p) => p !== to).map((p) => p.presenceId);
      const holders = { instanceId: INSTANCE, unavailable: others, leaseSeconds, notify: false };
      const [written] = await enqueueSends(db, [message], holders);
      const [lease] = JSON.parse(written!.leased) as Array<{ presenceId: string; seq: number }>;
      expect(lease?.presenceId).toBe(to.presenceId);
      leased.push({
        ...message,
        senderPubkey: sender.pubkey,
        createdAt: written!.createdAt,
        messageId: message.id,
        presenceId: lease!.presenceId,
        memberId: recipient.id,
        attempt: 1,
        seq: lease!.seq,
      });
    }
    return leased;
  };
  return { pump, presence, second, presences, taken, attempts, script, send };
}

/** Acks every push the socket took, as a reader would, until it took `ids`. */
async function readAll(s: Stage, ids: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  let acked = 0;
  while (s.taken.length < ids.length || !ids.every((id) => s.taken.includes(id))) {
    if (Date.now() > deadline) throw new Error(`the socket took ${JSON.stringify(s.taken)}, not all of ${JSON.stringify(ids)}`);
    if (acked < s.taken.length) await s.pump.ack(s.presence, s.presence.window.split(s.taken.slice(acked, (acked = s.taken.length))));
    await Bun.sleep(5);
  }
}

describe("a later lease does not overtake a push handed back to the queue", () => {
  test("the socket dropped the first push and took the next as it drained: both go out in order", async () => {
    const s = await stage(512);
    const [first, second] = (await s.send(2)) as [LeasedDelivery, LeasedDelivery];
    s.script.push("dropped");
    await s.pump.handLeased([first]);
    // The second was leased by a statement that ran before the first came back.
    await s.pump.handLeased([second]);
    s.pump.drained(s.presence);
    await readAll(s, [first.messageId, second.messageId]);
    expect(s.taken).toEqual([first.messageId, second.messageId]);
    // The dropped push was never delivered: the one the socket took is its first.
    expect(s.attempts.get(first.messageId)).toBe(1);
    await s.pump.stop();
  });

  test("a later message a statement leased to the member's other presence waits for the push the first one handed back", async () => {
    const s = await stage(512, { second: true });
    const [first] = (await s.send(1)) as [LeasedDelivery];
    // Leased to the other presence by a statement that ran before the first came back.
    const [later] = (await s.send(1, s.second)) as [LeasedDelivery];
    s.script.push("dropped");
    // Handed out as two statements' leases are: the second while the first's push is on its way back.
    await Promise.all([s.pump.handLeased([first]), s.pump.handLeased([later])]);
    s.pump.drained(s.presence);
    await readAll(s, [first.messageId, later.messageId]);
    expect(s.taken).toEqual([first.messageId, later.messageId]);
    await s.pump.stop();
  });

  test("a window that was full for the second push of a statement opens before the next statement's push", async () => {
    const s = await stage(1);
    const [a, b, c] = (await s.send(3)) as [LeasedDelivery, LeasedDelivery, LeasedDelivery];
    // One statement leased a and b: the window takes a, and b goes back.
    await s.pump.handLeased([a, b]);
    expect(s.taken).toEqual([a.messageId]);
    // a is acked (its window opens) while c, leased by a statement that ran
    // before b came back, is handed out.
    s.presence.window.settled([a.messageId]);
    await s.pump.handLeased([c]);
    await readAll(s, [a.messageId, b.messageId, c.messageId]);
    expect(s.taken).toEqual([a.messageId, b.messageId, c.messageId]);
    await s.pump.stop();
  });
});

describe("a statement's leases handed out after older pushes' leases ran out (LEASE_SECONDS=1)", () => {
  test("they wait for those pushes to go out again: nothing past the window's oldest goes out before an ack", async () => {
    const s = await stage(3, { leaseSeconds: 1 });
    const [a, b] = (await s.send(2)) as [LeasedDelivery, LeasedDelivery];
    await s.pump.handLeased([a, b]);
    // Their leases run out, here and in the database; nothing takes them back yet.
    await Bun.sleep(1100);
    // A statement that saw the window with room (before the lapse) leased c and d to it.
    const [c, d] = (await s.send(2)) as [LeasedDelivery, LeasedDelivery];
    await s.pump.handLeased([c, d]);
    await waitUntil(() => s.taken.length >= 5 || s.taken.includes(d.messageId), 10_000, "a and b pushed again, then c");
    // a, b and c are the window's three oldest; d waits for an ack.
    expect(s.taken.slice(0, 5)).toEqual([a.messageId, b.messageId, a.messageId, b.messageId, c.messageId]);
    expect(s.taken).not.toContain(d.messageId);
    await readAll(s, [a.messageId, b.messageId, c.messageId, d.messageId]);
    await s.pump.stop();
  });
});

describe.skipIf(backendKind !== "postgres")("a lease that runs out while the pump takes back another (LEASE_SECONDS=3)", () => {
  const server = useBackendDatabase();

  test("it is taken back and pushed again by the pump itself, right after that one", async () => {
    const s = await stage(3, { leaseSeconds: 3, db: server.db });
    const [a] = (await s.send(1)) as [LeasedDelivery];
    await s.pump.handLeased([a]);
    await Bun.sleep(1500);
    const [b] = (await s.send(1)) as [LeasedDelivery];
    await s.pump.handLeased([b]);
    const lockWaits = async () =>
      (await server.db.rows<{ n: number }>(sql`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))[0]!.n > 0;
    const holder = postgres(server.backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      await holder.begin(async (tx) => {
        // a's row held from here: the pump's take-back of a waits for it.
        await tx`SELECT 1 FROM deliveries WHERE message_id = ${a.messageId} FOR UPDATE`;
        // a's lease ran out, b's has 1.4 s to go (by the database's clock too): the take-back is of a alone.
        await Bun.sleep(1600);
        s.pump.schedule([s.presence.memberId]);
        await waitUntil(lockWaits, 10_000, "the take-back waiting for a's row");
        // Now b's ran out, seen here by a send asking for the window's room.
        await Bun.sleep(1500);
        expect(s.presence.window.lapsed()).toBe(true);
      });
    } finally {
      await holder.end();
    }
    // No lease sweep runs here: only the pump can take b back.
    await waitUntil(() => s.taken.length >= 4, 10_000, "b pushed again");
    expect(s.taken).toEqual([a.messageId, b.messageId, a.messageId, b.messageId]);
    await s.pump.stop();
  });
});

/**
 * The scratch database, but for acks: an ack's statement waits until `fail`
 * is called, then fails as on a lost connection. `acking` is set once one
 * waits; `listed` once a recovery has listed the presences' leases.
 */
function heldAcks() {
  let fail = () => {};
  const failed = new Promise<void>((resolve) => (fail = resolve));
  const held = {
    acking: false,
    listed: false,
    fail: () => fail(),
    db: {
      ...scratch.db,
      relaxed: {
        rows: async <T>(query: Statement): Promise<T[]> => {
          const text = toQuery(query).sql;
          if (text.includes("INSERT INTO acked_deliveries")) {
            held.acking = true;
            await failed;
            throw Object.assign(new Error("connection lost"), { code: "ECONNRESET" });
          }
          const rows = await scratch.db.relaxed.rows<T>(query);
          if (text.includes("l.lease_expires_at > now()")) held.listed = true;
          return rows;
        },
      },
    } satisfies Database,
  };
  return held;
}

// Every batch of sends asks the pump which presences here it must not lease
// to; only those a push engaged are looked at (delivery/unavailable.ts).
describe("the presences a send must not lease to", () => {
  test("one whose window is full, until its pushes are acked", async () => {
    const s = await stage(2);
    const [a, b] = (await s.send(2)) as [LeasedDelivery, LeasedDelivery];
    expect(s.pump.unavailable()).toEqual([]);
    await s.pump.handLeased([a]);
    expect(s.pump.unavailable()).toEqual([]);
    await s.pump.handLeased([b]);
    expect(s.pump.unavailable()).toEqual([s.presence.presenceId]);
    await s.pump.ack(s.presence, s.presence.window.split([a.messageId]));
    expect(s.pump.unavailable()).toEqual([]);
    await s.pump.ack(s.presence, s.presence.window.split([b.messageId]));
    expect(s.pump.unavailable()).toEqual([]);
    // Found at rest, it is not looked at again until a push engages it.
    expect(s.presences.engaged()).toEqual([]);
    await s.pump.stop();
  });

  test("one whose socket backs up, until it drains", async () => {
    const s = await stage(512);
    const [a] = (await s.send(1)) as [LeasedDelivery];
    s.script.push("congested");
    await s.pump.handLeased([a]);
    expect(s.pump.unavailable()).toEqual([s.presence.presenceId]);
    s.pump.drained(s.presence);
    expect(s.pump.unavailable()).toEqual([]);
    await s.pump.stop();
  });

  test("every presence of a member whose push went back to the queue, until a claim took it again", async () => {
    const s = await stage(512, { second: true });
    const [a] = (await s.send(1)) as [LeasedDelivery];
    s.script.push("dropped");
    await s.pump.handLeased([a]);
    // The claim that takes it again has not answered yet.
    expect(s.pump.unavailable().sort()).toEqual([s.presence.presenceId, s.second.presenceId].sort());
    // It leases it to the other presence, whose socket takes it; the first stays backed up.
    await waitUntil(() => s.taken.includes(a.messageId), 10_000, "a pushed to the other presence");
    await waitUntil(() => s.pump.unavailable().length === 1, 10_000, "the member's pushes all out again");
    expect(s.pump.unavailable()).toEqual([s.presence.presenceId]);
    await s.pump.stop();
  });

  test("one whose window was full again when its ack's statement failed, found at rest while it ran", async () => {
    const acks = heldAcks();
    const s = await stage(1, { db: acks.db });
    const [a] = (await s.send(1)) as [LeasedDelivery];
    await s.pump.handLeased([a]);
    expect(s.pump.unavailable()).toEqual([s.presence.presenceId]);
    const ack = s.pump.ack(s.presence, s.presence.window.split([a.messageId]));
    await waitUntil(() => acks.acking || undefined, 10_000, "the ack's statement");
    // Its window is empty while the ack is written: at rest, it leaves the engaged set.
    expect(s.pump.unavailable()).toEqual([]);
    expect(s.presences.engaged()).toEqual([]);
    acks.fail();
    expect(await ack.then(() => "acked", () => "failed")).toBe("failed");
    // The push awaits its ack again, and fills the window.
    expect(s.presence.window.room()).toBe(0);
    expect(s.pump.unavailable()).toEqual([s.presence.presenceId]);
    await s.pump.stop();
  });

  test("one holding a push whose lease ran out, until the queue took it back (LEASE_SECONDS=1)", async () => {
    const s = await stage(3, { leaseSeconds: 1 });
    const [a] = (await s.send(1)) as [LeasedDelivery];
    await s.pump.handLeased([a]);
    expect(s.pump.unavailable()).toEqual([]);
    await Bun.sleep(1100);
    expect(s.pump.unavailable()).toEqual([s.presence.presenceId]);
    // The pump takes it back and pushes it again.
    s.pump.schedule([s.presence.memberId]);
    await waitUntil(() => s.taken.length >= 2, 10_000, "a pushed again");
    expect(s.pump.unavailable()).toEqual([]);
    await s.pump.stop();
  });
});

// After the bus listened again, the pump recovers the leases whose notices
// it may have missed (delivery/missed-leases.ts); a push whose ack is being
// written has left its window, and comes back to it if the ack fails.
describe("a recovery of missed leases while an ack is written", () => {
  test("one it listed while its ack was written is not pushed again when the ack fails", async () => {
    const acks = heldAcks();
    const s = await stage(2, { db: acks.db });
    const [a] = (await s.send(1)) as [LeasedDelivery];
    await s.pump.handLeased([a]);
    const ack = s.pump.ack(s.presence, s.presence.window.split([a.messageId]));
    await waitUntil(() => acks.acking || undefined, 10_000, "the ack's statement");
    // The bus listened again: the recovery lists the lease, which no window holds while its ack is written.
    s.pump.recoverMissedLeases();
    await waitUntil(() => acks.listed || undefined, 10_000, "the recovery's list of leases");
    expect(s.presence.window.holds(a.messageId)).toBe(false);
    acks.fail();
    expect(await ack.then(() => "acked", () => "failed")).toBe("failed");
    // The push is back in its window; the recovery, done once the pump stops, leaves it there.
    expect(s.presence.window.holds(a.messageId)).toBe(true);
    await s.pump.stop();
    expect(s.taken).toEqual([a.messageId]);
  });
});
