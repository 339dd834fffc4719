// Three broker processes on one real Postgres (DESIGN.md invariants 1 and 6):
// peers on different instances reach each other, hooks and admin calls on one
// instance act on sockets held by another, a SIGKILLed instance loses no
// acknowledged message and leaves no ghost presence, a Postgres restart under
// all three loses nothing that was acked, and an instance frozen past its
// lease sends its peers away instead of keeping sockets nothing is routed to.
// The file owns its Postgres server (it stops and starts it), so it needs the
// server binaries.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { PeersReply } from "@switchboard/protocol";
import {
  ownPostgresTestsRun,
  PeerError,
  postgresBackend,
  pushesBeforeMarker,
  setupMesh,
  startPostgresCluster,
  TestBroker,
  TestPeer,
  waitUntil,
  type AdminClient,
  type CloseInfo,
  type ConnectOptions,
  type Frame,
  type PostgresCluster,
  type SetupMember,
  type TestBackend,
} from "@switchboard/testkit";
import postgres from "postgres";

// Short instance leases for the tests that wait for instances to be taken for
// dead (renewed every third of it): a killed or frozen instance is reaped
// within seconds instead of the production 15 s. Not shorter: at 3 s, a live
// instance on a loaded machine missed its renewals and was reaped again.
const INSTANCE_LEASE_SECONDS = 5;
const SHORT_INSTANCE_LEASE = { INSTANCE_LEASE_SECONDS: String(INSTANCE_LEASE_SECONDS) };
const OUTAGE_INSTANCE_LEASE_SECONDS = 8;

interface Trio {
  backend: TestBackend;
  /** A, B, C. */
  brokers: [TestBroker, TestBroker, TestBroker];
  admin: AdminClient;
  peers: TestPeer[];
  stop(): Promise<void>;
}

/** A new database on the cluster and three brokers on it, with the same admin token. */
async function startTrio(cluster: PostgresCluster, env: Record<string, string> = {}): Promise<Trio> {
  const backend = await postgresBackend(cluster.url());
  const brokers: [TestBroker, TestBroker, TestBroker] = [
    new TestBroker(env, { backend }),
    new TestBroker(env, { backend }),
    new TestBroker(env, { backend }),
  ];
  const peers: TestPeer[] = [];
  const stop = async () => {
    await Promise.all(peers.map((p) => p.close()));
    await Promise.all(brokers.map((b) => b.dispose()));
    await backend.dispose();
  };
  const failed = (await Promise.allSettled(brokers.map((b) => b.start()))).find((s) => s.status === "rejected");
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { backend, brokers, admin: brokers[0].admin, peers, stop };
}

async function connectTo(
  trio: Trio,
  broker: TestBroker,
  member: SetupMember,
  meshId: string,
  options: Partial<ConnectOptions> = {},
): Promise<TestPeer> {
  const peer = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId, ...options }).catch((error: unknown) => {
    // A refusal as internal: the instance logged why.
    const errors = broker.process.logs.filter((l) => (l.level ?? 0) >= 50).slice(-3);
    throw new Error(`${String(error)}; ${broker.url}'s last error logs: ${JSON.stringify(errors)}`);
  });
  trio.peers.push(peer);
  return peer;
}

/** The send's ack, or a failure showing the broker's answer. */
async function sendAcked(from: TestPeer, targetSpec: string, priority = "next"): Promise<string> {
  const reply = await from.send(targetSpec, { priority, id: crypto.randomUUID() });
  if (reply.type !== "ack" || typeof reply.messageId !== "string") throw new Error(`send not acked: ${JSON.stringify(reply)}`);
  return reply.messageId;
}

const pushOf = (messageId: string) => (f: Frame) => f.type === "push" && f.messageId === messageId;

function receivedIds(peer: TestPeer): Set<string> {
  return new Set(peer.pushes().map((p) => String(p.messageId)));
}

/** Waits until every id has been pushed to one of peers; returns the ids still missing. */
async function missingAfter(peers: TestPeer[], ids: string[], timeoutMs: number): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const got = new Set(peers.flatMap((p) => [...receivedIds(p)]));
    const missing = ids.filter((id) => !got.has(id));
    if (missing.length === 0 || Date.now() > until) return missing;
    await Bun.sleep(100);
  }
}

/** Resolves with the close of the socket, or null when it is still open after ms. */
async function closedWithin(peer: TestPeer, ms: number): Promise<CloseInfo | null> {
  let timer: Timer | undefined;
  const result = await Promise.race([
    peer.closed,
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    }),
  ]);
  clearTimeout(timer);
  return result;
}

async function listPeers(peer: TestPeer): Promise<PeersReply["peers"]> {
  const reply = await peer.request({ type: "list_peers" });
  if (reply.type !== "peers") throw new Error(`list_peers answered ${JSON.stringify(reply)}`);
  return (reply as unknown as PeersReply).peers;
}

function postHook(broker: TestBroker, token: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${broker.url}/hook/set-status`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function healthStatus(broker: TestBroker): Promise<number> {
  try {
    return (await fetch(`${broker.url}/health`, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return 0;
  }
}

async function allHealthBecome(brokers: TestBroker[], status: number, timeoutMs: number): Promise<number[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const got = await Promise.all(brokers.map(healthStatus));
    if (got.every((s) => s === status) || Date.now() > until) return got;
    await Bun.sleep(200);
  }
}

/**
 * Resolves once each broker has made `rounds` whole reaping rounds from now. An instance renews
 * its lease and then reaps, in one timer callback that never overlaps itself; each renewal moves
 * its lease_expires_at. The renewal after the first one seen began after the reaping that
 * followed it ended, so rounds + 1 new values of a broker's lease mean `rounds` whole rounds.
 */
const instanceIdOf = async (broker: TestBroker) => ((await (await fetch(`${broker.url}/health`)).json()) as { instanceId: string }).instanceId;

async function reapingRounds(trio: Trio, brokers: TestBroker[], rounds: number): Promise<void> {
  const ids = await Promise.all(brokers.map(instanceIdOf));
  const sql = postgres(trio.backend.databaseUrl!, { max: 1, onnotice: () => {} });
  try {
    const seen = new Map(ids.map((id) => [id, new Set<number>()]));
    const until = Date.now() + (rounds + 2) * INSTANCE_LEASE_SECONDS * 1000 + 10_000;
    for (;;) {
      const rows = await sql<{ id: string; lease: Date }[]>`
        SELECT id, lease_expires_at AS lease FROM broker_instances WHERE id IN ${sql(ids)}`;
      for (const row of rows) seen.get(row.id)!.add(row.lease.getTime());
      // The first value read may be a renewal under way before the call: it does not count.
      if ([...seen.values()].every((values) => values.size >= rounds + 2)) return;
      if (Date.now() > until) throw new Error(`no ${rounds} reaping rounds of ${ids.join(", ")} in time`);
      await Bun.sleep(100);
    }
  } finally {
    await sql.end();
  }
}

describe.skipIf(!ownPostgresTestsRun())("three instances on one Postgres", () => {
  let cluster: PostgresCluster | undefined;
  /** A trio started by one test, stopped after it even when it fails. */
  let own: Trio | undefined;

  beforeAll(async () => {
    cluster = await startPostgresCluster();
  });
  afterEach(async () => {
    await own?.stop();
    own = undefined;
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  describe("sharing one trio", () => {
    let trio: Trio;
    beforeAll(async () => {
      trio = await startTrio(cluster!, { MAX_CONNECTIONS_PER_MESH: "100" });
    });
    afterAll(async () => {
      await trio?.stop();
    });

    test("a peer on A reaches peers on B and C: direct, broadcast and channel", async () => {
      const [a, b, c] = trio.brokers;
      const { mesh, members } = await setupMesh(trio.admin, { members: ["sender", "bob", "carol"] });
      const [senderM, bobM, carolM] = members as [SetupMember, SetupMember, SetupMember];
      const sender = await connectTo(trio, a, senderM, mesh.id);
      const bob = await connectTo(trio, b, bobM, mesh.id, { autoAck: true });
      const carol = await connectTo(trio, c, carolM, mesh.id, { autoAck: true });
      for (const p of [bob, carol]) expect(await p.request({ type: "join", channel: "#x" })).toMatchObject({ type: "ack" });

      const toBob = await sendAcked(sender, bobM.pubkey);
      const toCarol = await sendAcked(sender, carolM.pubkey);
      const broadcast = await sendAcked(sender, "*");
      const channel = await sendAcked(sender, "#x");

      for (const id of [toBob, broadcast, channel]) expect(await bob.nextFrame(pushOf(id))).toMatchObject({ senderPubkey: senderM.pubkey });
      for (const id of [toCarol, broadcast, channel]) expect(await carol.nextFrame(pushOf(id))).toMatchObject({ senderPubkey: senderM.pubkey });
      // Direct messages stay with their recipient: each has had the later broadcast and channel
      // message, which its queue holds behind a direct message wrongly meant for it.
      expect(receivedIds(bob).has(toCarol)).toBe(false);
      expect(receivedIds(carol).has(toBob)).toBe(false);
    });

    test("hooks posted to C set the status of a presence held by A; held messages follow", async () => {
      const [a, b, c] = trio.brokers;
      const { mesh, members } = await setupMesh(trio.admin, { members: ["agent", "sender"] });
      const [agentM, senderM] = members as [SetupMember, SetupMember];
      const sessionId = `claude-${crypto.randomUUID()}`;
      const cwd = "/home/me/project";
      const agent = await connectTo(trio, a, agentM, mesh.id, { sessionId, cwd, pid: 4242 });
      const sender = await connectTo(trio, b, senderM, mesh.id);
      const token = await trio.admin.createHookToken(mesh.id, agentM.id);

      const working = await postHook(c, token, { cwd, status: "working", session_id: sessionId });
      expect(working.status).toBe(200);
      expect(await working.json()).toEqual({ ok: true, presence_id: agent.helloAck?.presenceId });
      const seen = (await listPeers(sender)).find((p) => p.pubkey === agentM.pubkey)?.presences;
      expect(seen).toEqual([expect.objectContaining({ sessionId, status: "working", statusSource: "hook" })]);

      const held = await sendAcked(sender, agentM.pubkey, "next");
      expect(await pushesBeforeMarker(sender, agent)).toEqual([]);

      const idle = await postHook(c, token, { cwd, status: "idle", session_id: sessionId });
      expect(idle.status).toBe(200);
      expect(await idle.json()).toEqual({ ok: true, presence_id: agent.helloAck?.presenceId });
      expect(await agent.nextFrame(pushOf(held))).toMatchObject({ priority: "next", senderPubkey: senderM.pubkey });
    });

    test("101 simultaneous hellos over three instances into a mesh of capacity 100: 100 in, 1 refused", async () => {
      const { mesh, members } = await setupMesh(trio.admin, { members: 5 });
      const attempts = Array.from({ length: 101 }, (_, i) =>
        TestPeer.connect(trio.brokers[i % 3]!.wsUrl, { identity: members[i % 5]!.identity, meshId: mesh.id, timeoutMs: 60_000 }),
      );
      const settled = await Promise.allSettled(attempts);
      const admitted = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
      trio.peers.push(...admitted);
      const refused = settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : []));
      expect(admitted.length).toBe(100);
      expect(refused.length).toBe(1);
      expect(refused[0]).toBeInstanceOf(PeerError);
      expect((refused[0] as PeerError).code).toBe("capacity");
      expect((await trio.admin.peers(mesh.id)).length).toBe(100);
      await Promise.all(admitted.map((p) => p.close()));
    });

    test("a session reconnecting on C replaces its socket on A (4000)", async () => {
      const [a, b, c] = trio.brokers;
      const { mesh, members } = await setupMesh(trio.admin, { members: ["agent", "sender"] });
      const [agentM, senderM] = members as [SetupMember, SetupMember];
      const sessionId = crypto.randomUUID();
      const old = await connectTo(trio, a, agentM, mesh.id, { sessionId });
      const fresh = await connectTo(trio, c, agentM, mesh.id, { sessionId });

      const info = await closedWithin(old, 10_000);
      expect(info).toEqual({ code: 4000, reason: "replaced" });
      expect(fresh.isOpen).toBe(true);

      // The replacement is the member's one presence, and it receives.
      const sender = await connectTo(trio, b, senderM, mesh.id);
      const presences = (await listPeers(sender)).find((p) => p.pubkey === agentM.pubkey)?.presences ?? [];
      expect(presences.map((p) => p.sessionId)).toEqual([sessionId]);
      const id = await sendAcked(sender, agentM.pubkey);
      await fresh.nextFrame(pushOf(id));
    });

    test("revoking a member through A's admin API closes its sockets on B and C (4002)", async () => {
      const [a, b, c] = trio.brokers;
      const { mesh, members } = await setupMesh(trio.admin, { members: ["doomed", "bystander"] });
      const [doomedM, bystanderM] = members as [SetupMember, SetupMember];
      const onB = await connectTo(trio, b, doomedM, mesh.id);
      const onC = await connectTo(trio, c, doomedM, mesh.id);
      const bystander = await connectTo(trio, b, bystanderM, mesh.id);

      await a.admin.revokeMember(mesh.id, doomedM.id);
      expect(await closedWithin(onB, 10_000)).toEqual({ code: 4002, reason: "revoked" });
      expect(await closedWithin(onC, 10_000)).toEqual({ code: 4002, reason: "revoked" });
      expect(bystander.isOpen).toBe(true);
    });
  });

  test("SIGKILL of B: its peers reconnect to A and get every acked message; its presences vanish", async () => {
    own = await startTrio(cluster!, SHORT_INSTANCE_LEASE);
    const trio = own;
    const [a, b, c] = trio.brokers;
    const { mesh, members } = await setupMesh(trio.admin, { members: ["sender", "r1", "r2", "r3", "watcher"] });
    const [senderM, r1M, r2M, r3M, watcherM] = members as [SetupMember, SetupMember, SetupMember, SetupMember, SetupMember];
    const sender = await connectTo(trio, a, senderM, mesh.id);
    const watcher = await connectTo(trio, c, watcherM, mesh.id);
    // Acks by hand: half of what B pushes is never acknowledged.
    const r1 = await connectTo(trio, b, r1M, mesh.id);
    const r2 = await connectTo(trio, b, r2M, mesh.id);
    const r3 = await connectTo(trio, b, r3M, mesh.id);

    const before: Record<"r1" | "r2", string[]> = { r1: [], r2: [] };
    for (let i = 0; i < 6; i++) {
      before.r1.push(await sendAcked(sender, r1M.pubkey));
      before.r2.push(await sendAcked(sender, r2M.pubkey));
    }
    expect(await missingAfter([r1], before.r1, 10_000)).toEqual([]);
    expect(await missingAfter([r2], before.r2, 10_000)).toEqual([]);
    r1.ack(before.r1.slice(0, 3));
    r2.ack(before.r2.slice(0, 3));
    // Frames are handled in order: the pong means the acks are committed.
    await Promise.all([r1, r2].map((r) => r.request({ type: "ping" })));

    b.process.kill("SIGKILL");
    const killedAt = Date.now();
    await b.process.exited;
    await Promise.all([r1, r2, r3].map((p) => p.closed));

    // Sent while neither recipient has a socket anywhere.
    const after: Record<"r1" | "r2", string[]> = { r1: [], r2: [] };
    for (let i = 0; i < 4; i++) {
      after.r1.push(await sendAcked(sender, r1M.pubkey));
      after.r2.push(await sendAcked(sender, r2M.pubkey));
    }

    // r1 comes back as a new session, r2 resumes its old one.
    const r1b = await connectTo(trio, a, r1M, mesh.id, { autoAck: true });
    const r2b = await connectTo(trio, a, r2M, mesh.id, { autoAck: true, sessionId: r2.sessionId });
    // Never acked: must come again on the new socket. Acked ones may, too (at least once).
    expect(await missingAfter([r1b], [...before.r1.slice(3), ...after.r1], 35_000)).toEqual([]);
    expect(await missingAfter([r2b], [...before.r2.slice(3), ...after.r2], 35_000)).toEqual([]);
    expect(await missingAfter([r1, r1b], [...before.r1, ...after.r1], 0)).toEqual([]);
    expect(await missingAfter([r2, r2b], [...before.r2, ...after.r2], 0)).toEqual([]);

    // No ghost: the killed instance's sessions leave the peer list (contract: within 30 s).
    const gone = [r1.sessionId, r3.sessionId];
    const until = killedAt + 35_000;
    let peers = await listPeers(watcher);
    const sessions = () => peers.flatMap((p) => p.presences.map((s) => s.sessionId));
    while (Date.now() < until && (gone.some((s) => sessions().includes(s)) || sessions().filter((s) => s === r2.sessionId).length !== 1)) {
      await Bun.sleep(500);
      peers = await listPeers(watcher);
    }
    expect(sessions().filter((s) => gone.includes(s))).toEqual([]);
    expect(sessions().filter((s) => s === r2.sessionId)).toEqual([r2.sessionId]);
    expect(sessions()).toContain(r1b.sessionId);
    // A peer on A sees the same list.
    expect((await listPeers(sender)).flatMap((p) => p.presences.map((s) => s.sessionId)).sort()).toEqual(sessions().sort());
  });

  test("a Postgres restart under three instances loses no acked message", async () => {
    // Short leases: a claim whose commit the outage swallowed is pushed again soon.
    // Instance leases long enough that every instance, its pool reconnecting
    // after the outage on a busy machine, renews within the one lease each
    // gives the others; the outage still outlasts them.
    own = await startTrio(cluster!, { LEASE_SECONDS: "2", INSTANCE_LEASE_SECONDS: String(OUTAGE_INSTANCE_LEASE_SECONDS) });
    const trio = own;
    const [a, b, c] = trio.brokers;
    // An instance that ends on its own says why in its last error logs.
    const exits: string[] = [];
    for (const broker of trio.brokers) {
      void broker.process.exited.then((code) => {
        const errors = broker.process.logs.filter((l) => (l.level ?? 0) >= 50).slice(-3);
        exits.push(`${broker.url} exited ${code}: ${JSON.stringify(errors)}`);
      });
    }
    const { mesh, members } = await setupMesh(trio.admin, { members: ["s1", "s2", "rb", "rc"] });
    const [s1M, s2M, rbM, rcM] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const senders = [await connectTo(trio, a, s1M, mesh.id), await connectTo(trio, a, s2M, mesh.id)];
    const recipients = [
      { member: rbM, peer: await connectTo(trio, b, rbM, mesh.id, { autoAck: true }) },
      { member: rcM, peer: await connectTo(trio, c, rcM, mesh.id, { autoAck: true }) },
    ];

    const N = 300;
    const acked = new Map<string, TestPeer>();
    const failures = new Map<string, number>();
    let attempts = 0;
    let rounds = 0;
    /** One round: each sender sends one message, to alternating recipients; only acks count. */
    const round = async () => {
      rounds++;
      await Promise.all(
        senders.map(async (sender, i) => {
          const to = recipients[(rounds + i) % 2]!;
          attempts++;
          let reply: Frame;
          try {
            reply = await sender.request(
              { type: "send", targetSpec: to.member.pubkey, nonce: "n", ciphertext: `m-${attempts}`, id: crypto.randomUUID() },
              20_000,
            );
          } catch (error) {
            if (!(error instanceof PeerError)) throw error;
            failures.set("no reply", (failures.get("no reply") ?? 0) + 1);
            return;
          }
          if (reply.type === "ack" && typeof reply.messageId === "string") acked.set(reply.messageId, to.peer);
          else failures.set(String(reply.code), (failures.get(String(reply.code)) ?? 0) + 1);
        }),
      );
    };

    for (let i = 0; i < 200 && acked.size < 100; i++) await round();
    expect(acked.size).toBeGreaterThanOrEqual(100);

    // The outage outlasts the instance leases: when the database is back, no
    // instance may take the others for dead and end their presences.
    await cluster!.stop();
    try {
      const stoppedAt = Date.now();
      const outageUntil = stoppedAt + 60_000;
      while (Date.now() < outageUntil) {
        await round();
        const health = await Promise.all(trio.brokers.map(healthStatus));
        if (health.every((s) => s === 503) && Date.now() - stoppedAt > OUTAGE_INSTANCE_LEASE_SECONDS * 1000 + 2000) break;
        await Bun.sleep(200);
      }
      expect(exits).toEqual([]);
      expect(await allHealthBecome(trio.brokers, 503, 0)).toEqual([503, 503, 503]);
    } finally {
      // Back for the tests after this one, whatever this one found.
      await cluster!.start();
    }

    const sendUntil = Date.now() + 90_000;
    while (acked.size < N && Date.now() < sendUntil && attempts < 5_000) {
      const before = acked.size;
      await round();
      if (acked.size === before) await Bun.sleep(200);
    }
    // Short of N, say what the sends got meanwhile and how the instances were.
    if (acked.size < N) {
      const health = await Promise.all(trio.brokers.map(healthStatus));
      const warned = trio.brokers.map((b) => b.process.logs.filter((l) => (l.level ?? 0) >= 40).slice(-5).map((l) => l.msg));
      throw new Error(`${acked.size} of ${N} sends acked: ${JSON.stringify({ failures: [...failures], health, warned })}`);
    }
    // Sends fail only as "internal" while the database is away.
    expect([...failures.keys()].filter((k) => k !== "internal")).toEqual([]);

    const until = Date.now() + 60_000;
    let missing: string[] = [...acked.keys()];
    while (missing.length > 0 && Date.now() < until) {
      await Bun.sleep(200);
      missing = [...acked].filter(([id, peer]) => !receivedIds(peer).has(id)).map(([id]) => id);
    }
    // What a message missing here left behind: its deliveries, and what the instances logged.
    const left = async (ids: string[]) => {
      const sql = postgres(trio.backend.databaseUrl!, { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`SELECT message_id, state, attempt, lease_presence_id, lease_expires_at FROM deliveries WHERE message_id = ANY(${ids}::uuid[])`;
        const logged = trio.brokers.map((b) => {
          const counts: Record<string, number> = {};
          for (const l of b.process.logs) if ((l.level ?? 0) >= 40) counts[String(l.msg)] = (counts[String(l.msg)] ?? 0) + 1;
          return counts;
        });
        return { ids, rows, logged };
      } finally {
        await sql.end();
      }
    };
    expect(missing.length === 0 ? [] : await left(missing)).toEqual([]);
    expect(await allHealthBecome(trio.brokers, 200, 30_000)).toEqual([200, 200, 200]);
    expect(exits).toEqual([]);
    for (const r of recipients) expect(r.peer.isOpen).toBe(true);

    // A revocation reaches the other instances only by NOTIFY: their listeners are back.
    const { mesh: other, members: [x] } = await setupMesh(trio.admin, { members: ["x"] });
    const xOnB = await connectTo(trio, b, x!, other.id);
    const xOnC = await connectTo(trio, c, x!, other.id);
    await trio.admin.revokeMember(other.id, x!.id);
    expect(await closedWithin(xOnB, 10_000)).toEqual({ code: 4002, reason: "revoked" });
    expect(await closedWithin(xOnC, 10_000)).toEqual({ code: 4002, reason: "revoked" });
  });

  test("an instance that starts while another's lease has lapsed gives it a lease to renew before ending its peers", async () => {
    // As after a database outage: A could not renew for longer than its lease, and is alive.
    const backend = await postgresBackend(cluster!.url());
    const a = new TestBroker(SHORT_INSTANCE_LEASE, { backend });
    const late = new TestBroker(SHORT_INSTANCE_LEASE, { backend });
    const peers: TestPeer[] = [];
    try {
      await a.start();
      const { mesh, members } = await setupMesh(a.admin, { members: ["stays"] });
      peers.push(await TestPeer.connect(a.wsUrl, { identity: members[0]!.identity, meshId: mesh.id }));
      const sql = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
      process.kill(a.process.pid, "SIGSTOP");
      try {
        await Bun.sleep((INSTANCE_LEASE_SECONDS + 1) * 1000);
        const starting = late.start();
        // A resumes as soon as the newcomer has registered: that is when a newcomer would reap it.
        const registered = async () => (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM broker_instances`)[0]!.n >= 2;
        await waitUntil(registered, 30_000, "the newcomer registered");
        process.kill(a.process.pid, "SIGCONT");
        await starting;
      } finally {
        process.kill(a.process.pid, "SIGCONT");
        await sql.end();
      }
      // A renews within a third of its lease; the newcomer waits a whole one before reaping.
      expect(await closedWithin(peers[0]!, (INSTANCE_LEASE_SECONDS + 2) * 1000)).toBeNull();
    } finally {
      await Promise.all(peers.map((p) => p.close()));
      await Promise.all([a.dispose(), late.dispose()]);
      await backend.dispose();
    }
  });

  test("an instance whose reaping waits on a row lock keeps renewing its lease, and the others do not take it for dead", async () => {
    own = await startTrio(cluster!, SHORT_INSTANCE_LEASE);
    const trio = own;
    const [a, b, c] = trio.brokers;
    const { mesh, members } = await setupMesh(trio.admin, { members: ["gone", "stays"] });
    await connectTo(trio, a, members[0]!, mesh.id);
    const stays = await connectTo(trio, b, members[1]!, mesh.id);
    const aId = await instanceIdOf(a);
    const sql = postgres(trio.backend.databaseUrl!, { max: 2, onnotice: () => {} });
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let held: Promise<unknown> | undefined;
    try {
      // A dies while its presence's row is locked, as by an instance frozen in the middle of a statement.
      let locked = () => {};
      const lockTaken = new Promise<void>((resolve) => (locked = resolve));
      held = sql.begin(async (tx) => {
        await tx`SELECT id FROM presences WHERE instance_id = ${aId} FOR UPDATE`;
        locked();
        await released;
      });
      await lockTaken;
      a.process.kill("SIGKILL");
      await a.process.exited;
      // B or C reaps A, and waits for that row.
      const reapWaits = async () =>
        (await sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query ILIKE '%UPDATE presences%'`)[0]!.n > 0;
      await waitUntil(reapWaits, 30_000, "a reap waiting on A's presence");
      // Both renew all the while: neither is reaped, nor closes its sockets.
      await reapingRounds(trio, [b, c], 2);
      expect(await reapWaits()).toBe(true);
      expect(stays.isOpen).toBe(true);
    } finally {
      release();
      await held?.catch(() => {});
      await sql.end();
    }
    expect(await closedWithin(stays, 2_000)).toBeNull();
  });

  test("an instance frozen past its lease sends its peers away when it wakes, then serves them again", async () => {
    own = await startTrio(cluster!, SHORT_INSTANCE_LEASE);
    const trio = own;
    const [a, b, c] = trio.brokers;
    const { mesh, members } = await setupMesh(trio.admin, { members: ["sender", "sleeper", "watcher"] });
    const [senderM, sleeperM, watcherM] = members as [SetupMember, SetupMember, SetupMember];
    const sender = await connectTo(trio, b, senderM, mesh.id);
    const watcher = await connectTo(trio, c, watcherM, mesh.id);
    const sleeper = await connectTo(trio, a, sleeperM, mesh.id, { autoAck: true });
    await sleeper.nextFrame(pushOf(await sendAcked(sender, sleeperM.pubkey)));

    const sessions = async () => (await listPeers(watcher)).flatMap((p) => p.presences.map((s) => s.sessionId));
    let during: string;
    process.kill(a.process.pid, "SIGSTOP");
    try {
      // B and C take A for dead and end its presences.
      const until = Date.now() + 35_000;
      while ((await sessions()).includes(sleeper.sessionId) && Date.now() < until) await Bun.sleep(500);
      expect(await sessions()).not.toContain(sleeper.sessionId);
      during = await sendAcked(sender, sleeperM.pubkey);
    } finally {
      process.kill(a.process.pid, "SIGCONT");
    }
    // Nothing is routed to A's old socket any more: it must go, so that its peer comes back.
    expect(await closedWithin(sleeper, 15_000)).toEqual({ code: 1001, reason: "lease lost" });
    const back = await connectTo(trio, a, sleeperM, mesh.id, { autoAck: true });
    await back.nextFrame(pushOf(during), 10_000);
    // A is live again: its new presence outlives the others' next reaping rounds.
    await reapingRounds(trio, [b, c], 2);
    expect(await sessions()).toContain(back.sessionId);
    await back.nextFrame(pushOf(await sendAcked(sender, sleeperM.pubkey)));
  });
});
