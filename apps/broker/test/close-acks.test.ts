// A session's socket closing with leases held. PROTOCOL.md §1 "client_ack":
// acks the broker read before a socket closed count even when it reaches
// them after the close. Their leases must not go back to the queue before
// they are applied, or the messages are pushed again, here to the member's
// other session, which never saw them. And a close racing the hello of the
// same session coming back must not deadlock with it in the database. A
// hello that names the session without proving its pubkey waits for nothing.
import { describe, expect, test } from "bun:test";
import {
  backendKind,
  PeerError,
  pushesBeforeMarker,
  setupMesh,
  someoneSleeps,
  TestPeer,
  useTestBroker,
  waitUntil,
  type SetupMember,
} from "@switchboard/testkit";
import { EVERY_DELIVERY } from "./support/acked.ts";
import { firstArrivals, peersOfEachTest, pushesUnwritten, queryPostgres, sendFrame, sendMany, str, withSlowJoins } from "./support/messaging.ts";

const { connect } = peersOfEachTest();

// Postgres only: a slow statement ahead of the acks (a channel join) holds
// them in the closing socket's pipeline while the close is handled; deadlocks
// are read from the server's statistics.
describe.skipIf(backendKind !== "postgres")("a session closing with leases held (LEASE_SECONDS=3600)", () => {
  const broker = useTestBroker({ LEASE_SECONDS: "3600" });
  const deadlocks = async () =>
    (await queryPostgres(
      broker.backend,
      (sql) => sql<{ n: number }[]>`SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()`,
    ))![0]!.n;

  const statesOf = (messageIds: string[]) =>
    queryPostgres(
      broker.backend,
      (sql) => sql<{ state: string }[]>`SELECT DISTINCT state FROM ${sql.unsafe(EVERY_DELIVERY)} d WHERE message_id = ANY (${messageIds}::uuid[])`,
    );

  /** A recipient's session `sessionId` holding the leases of 20 messages pushed to it. */
  async function twentyLeased(sessionId: string) {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["sender", "recipient"] });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, mesh.id, a);
    const first = await connect(broker, mesh.id, b, { sessionId });
    const acks = await sendMany(sender, Array.from({ length: 20 }, () => sendFrame(b.pubkey)));
    expect((await first.waitForPushes(20)).map((p) => p.messageId)).toEqual(acks.map((x) => x.messageId));
    return { mesh, b, sender, first, acks };
  }

  test("acks it read before the close are applied before its leases go back: the member's other session gets none of those messages", async () => {
    const { mesh, b, sender, first, acks } = await twentyLeased("first");
    // Connected now, with all 20 leased to the first session: it gets them only if they come back.
    const second = await connect(broker, mesh.id, b, { sessionId: "second" });

    await withSlowJoins(broker.backend, 1, async () => {
      first.sendFrame({ type: "join", channel: "#slow" });
      first.ack(acks.map((x) => str(x.messageId)));
      await first.close();
      // The close is written (the session gone from the mesh's peers) only after the frames it read.
      await waitUntil(
        async () => !(await broker.admin.peers(mesh.id)).some((p) => p.sessionId === "first"),
        30_000,
        "the first session to be gone",
      );
    });
    expect(await pushesBeforeMarker(sender, second)).toEqual([]);
    expect(await statesOf(acks.map((x) => str(x.messageId)))).toEqual([{ state: "acked" }]);
  });

  test("a message sent while a closed session's leases wait to go back does not overtake them: the member's next session gets them first", async () => {
    const { mesh, b, sender, first, acks } = await twentyLeased("first");
    const unwrittenBefore = await pushesUnwritten(broker.url);
    let second: Awaited<ReturnType<typeof connect>> | undefined;
    let marker = "";
    await withSlowJoins(broker.backend, 2, async () => {
      // Its leases go back only after the join it read: two seconds from now.
      first.sendFrame({ type: "join", channel: "#slow" });
      await first.close();
      second = await connect(broker, mesh.id, b, { sessionId: "second" });
      const ack = await sender.request(sendFrame(b.pubkey));
      marker = str(ack.messageId);
    });
    await waitUntil(() => firstArrivals(second!.pushes()).length === 21, 30_000, "all 21 messages at the next session");
    expect(firstArrivals(second!.pushes())).toEqual([...acks.map((x) => str(x.messageId)), marker]);
    // The later message waited in the queue: no claim leased it meanwhile only to hand it back, over and over.
    expect((await pushesUnwritten(broker.url)) - unwrittenBefore).toBe(0);
  });

  // The first socket holds its acks behind a slow join as the same session
  // says hello on a new socket: while the first is still open, or just closed.
  for (const closedFirst of [false, true]) {
    test(`a hello of the same session ${closedFirst ? "just after its socket closed" : "while its socket is still open"}: the acks that socket read count before the hello takes the leases back`, async () => {
      const { mesh, b, sender, first, acks } = await twentyLeased("same");
      let second: Awaited<ReturnType<typeof connect>> | undefined;
      await withSlowJoins(broker.backend, 1, async () => {
        first.sendFrame({ type: "join", channel: "#slow" });
        first.ack(acks.map((x) => str(x.messageId)));
        if (closedFirst) await first.close();
        second = await connect(broker, mesh.id, b, { sessionId: "same" });
      });
      expect(await pushesBeforeMarker(sender, second!)).toEqual([]);
      expect(await statesOf(acks.map((x) => str(x.messageId)))).toEqual([{ state: "acked" }]);
    });
  }

  test("closed and at once back with the same session id, eight times: no deadlock between the close and the hello that replaces it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["sender", "recipient"] });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, mesh.id, a);
    const before = await deadlocks();
    let peer = await connect(broker, mesh.id, b, { sessionId: "same" });
    for (let round = 0; round < 8; round++) {
      const ids = (await sendMany(sender, Array.from({ length: 100 }, () => sendFrame(b.pubkey)))).map((x) => str(x.messageId));
      await waitUntil(() => ids.every((id) => peer.pushes().some((p) => p.messageId === id)), 30_000, "the round's 100 pushes");
      // Half acked, half still leased as the socket closes and the same session says hello again.
      peer.ack(ids.slice(0, 50));
      void peer.close();
      peer = await connect(broker, mesh.id, b, { sessionId: "same" });
      const rest = ids.slice(50);
      await waitUntil(() => rest.every((id) => peer.pushes().some((p) => p.messageId === id)), 30_000, "the unacked half again");
      peer.ack(rest);
      await peer.request({ type: "ping" });
    }
    expect(await deadlocks()).toBe(before);
  });

  test("a revocation while the member's socket closes goes through: it does not deadlock with the close", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["sender", "recipient"] });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, mesh.id, a);
    const leaving = await connect(broker, mesh.id, b, { sessionId: "leaving" });
    const ids = (await sendMany(sender, Array.from({ length: 5 }, () => sendFrame(b.pubkey)))).map((x) => str(x.messageId));
    await waitUntil(() => ids.every((id) => leaving.pushes().some((p) => p.messageId === id)), 30_000, "the five pushes");
    // The close's transaction holds the presence's row a second before it takes the leases back.
    await queryPostgres(broker.backend, (sql) =>
      sql.unsafe(`
        CREATE FUNCTION slow_close() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
        CREATE TRIGGER slow_close AFTER UPDATE ON presences FOR EACH ROW
          WHEN (OLD.disconnected_at IS NULL AND NEW.disconnected_at IS NOT NULL AND NEW.session_id = 'leaving')
          EXECUTE FUNCTION slow_close();`),
    );
    const before = await deadlocks();
    try {
      await leaving.close();
      await waitUntil(() => someoneSleeps(broker.backend.databaseUrl!), 30_000, "the close under way");
      await broker.admin.revokeMember(mesh.id, b.id);
    } finally {
      await queryPostgres(broker.backend, (sql) => sql.unsafe("DROP TRIGGER slow_close ON presences; DROP FUNCTION slow_close();"));
    }
    const owed = await queryPostgres(
      broker.backend,
      (sql) => sql<{ n: number }[]>`SELECT count(*)::int AS n FROM deliveries WHERE message_id = ANY (${ids}::uuid[])`,
    );
    expect(owed).toEqual([{ n: 0 }]);
    expect(await deadlocks()).toBe(before);
  });
});

describe.skipIf(backendKind !== "postgres")("a hello naming a session whose socket here is busy (HELLO_TIMEOUT_MS=1000)", () => {
  const broker = useTestBroker({ HELLO_TIMEOUT_MS: "1000" });

  test("one whose signature does not verify is refused at once as bad_signature: it waits for none of that socket's frames", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["owner", "stranger"] });
    const [owner, stranger] = members as [SetupMember, SetupMember];
    const first = await connect(broker, mesh.id, owner, { sessionId: "same" });
    const outcome = await withSlowJoins(broker.backend, 4, async () => {
      first.sendFrame({ type: "join", channel: "#slow" });
      // The owner's pubkey and session, signed by another key. Had it waited
      // for the join (4 s), its admission's own bound (2 s) would close it first.
      return TestPeer.connect(broker.wsUrl, {
        identity: stranger.identity,
        meshId: mesh.id,
        sessionId: "same",
        helloOverrides: { pubkey: owner.pubkey },
      }).then(
        () => new Error("the hello was admitted"),
        (error: unknown) => error,
      );
    });
    if (!(outcome instanceof PeerError)) throw outcome;
    expect({ code: outcome.code, closeCode: outcome.closeCode }).toEqual({ code: "bad_signature", closeCode: 1008 });
  });

  test("one of the session itself waits for that socket's frames at most half its admission's time: it is admitted", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["owner"] });
    const [owner] = members as [SetupMember];
    const first = await connect(broker, mesh.id, owner, { sessionId: "same" });
    const second = await withSlowJoins(broker.backend, 4, async () => {
      first.sendFrame({ type: "join", channel: "#slow" });
      // The join takes 4 s; the admission has 2 s (twice HELLO_TIMEOUT_MS).
      return connect(broker, mesh.id, owner, { sessionId: "same" });
    });
    expect(second.helloAck?.type).toBe("hello_ack");
  });
});
