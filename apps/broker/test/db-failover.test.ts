// The database's connections go silent while new ones are served, as after a
// failover to another server: the sockets the pools hold stay open and
// nothing comes back on them, and TCP would take many minutes to say so.
// The broker closes a connection that owes answers and has heard nothing
// for DB_ANSWER_TIMEOUT_SECONDS, with the pool's idle ones, and goes on with
// new connections; what it had sent on a closed one may have committed, and
// is looked up, not taken for lost.
import { describe, expect, test } from "bun:test";
import { backendKind, PeerPool, setupMesh, TestBroker, waitUntil, type TestPeer } from "@switchboard/testkit";
import { brokerBehindProxy, pairBehindProxy } from "./support/behind-proxy.ts";

const text = (s: string) => Buffer.from(s).toString("base64");

describe.skipIf(backendKind !== "postgres")("connections silent after a failover (needs DATABASE_URL)", () => {
  test("sends are answered and delivered once over new connections; the silent ones are closed", async () => {
    const { broker, proxy, sender, recipient, recipientKey, dispose } = await pairBehindProxy({ DB_ANSWER_TIMEOUT_SECONDS: "2" }, ["before 1", "before 2"]);
    try {
      proxy.stallOpen();
      // Each within a bound far below what TCP would take; the first meets a silent connection.
      const answers = [];
      for (const s of ["after 1", "after 2", "after 3"]) {
        answers.push(await sender.request({ type: "send", targetSpec: recipientKey, nonce: "n", ciphertext: text(s), id: crypto.randomUUID() }, 30_000));
      }
      expect(answers.map((r) => r.type)).toEqual(["ack", "ack", "ack"]);
      expect((await broker.admin.createMesh("after-the-failover")).slug).toBe("after-the-failover");

      const pushes = await recipient.waitForPushes(5, 30_000);
      const texts = pushes.map((p) => Buffer.from(String(p.ciphertext), "base64").toString());
      expect(texts).toEqual(["before 1", "before 2", "after 1", "after 2", "after 3"]);
      expect(broker.process.exitCode).toBeNull();
      expect(broker.process.logs.filter((l) => (l.level ?? 0) >= 60)).toEqual([]);
    } finally {
      await dispose();
    }
  });

  test("the listening connection gone silent is found and replaced: another instance's news arrives again", async () => {
    const behind = await brokerBehindProxy({ DB_ANSWER_TIMEOUT_SECONDS: "2" });
    // The other instance reaches the database directly: its notifications are sent.
    const other = await TestBroker.start({}, { backend: behind.backend });
    const peers = new PeerPool();
    try {
      const { mesh, members } = await setupMesh(behind.broker.admin, { members: 12 });
      const [watcher, ...joiners] = members;
      const watching = await peers.connect(behind.broker.wsUrl, watcher!, mesh.id);
      expect(await watching.request({ type: "subscribe", events: ["presence"] })).toMatchObject({ type: "ack" });
      const joinedFromOther = (peer: TestPeer) =>
        watching.frames.some((f) => f.type === "presence" && f.event === "joined" && f.sessionId === peer.sessionId);
      const before = await peers.connect(other.wsUrl, joiners.pop()!, mesh.id);
      await waitUntil(() => joinedFromOther(before), 10_000, "a join on the other instance, heard here");

      behind.proxy.stallOpen();
      // Joins on the other instance, one a second, until one is heard here again.
      let heard = false;
      while (!heard && joiners.length > 0) {
        const joined = await peers.connect(other.wsUrl, joiners.pop()!, mesh.id);
        heard = await waitUntil(() => joinedFromOther(joined), 1000, "").then(() => true, () => false);
      }
      expect(heard).toBe(true);
    } finally {
      await peers.closeAll();
      await other.dispose();
      await behind.dispose();
    }
  });
});
