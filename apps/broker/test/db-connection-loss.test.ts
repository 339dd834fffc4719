// Database connections lost at the worst moments. A new one lost while
// postgres.js reads the server's array types (the first query of every
// connection it opens) rejects a promise of the driver's that nobody holds
// (porsager/postgres#1192). It happens when the server stops or restarts just
// as the pool reconnects; the broker must take it as the lost connection it
// is and not exit. And one lost after a send statement committed, before its
// answer came: what it stored is stored, and must be answered and pushed so.
// And a new connection the server refused as it was starting: the statement
// never reached it, and runs again on another.
import { connect, errorCode } from "@switchboard/db";
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import {
  backendKind,
  freshBackend,
  PeerPool,
  setupMesh,
  sleepOnInsert,
  startPostgresProxy,
  TestBroker,
  waitUntil,
} from "@switchboard/testkit";
import postgres from "postgres";
import { sendFrame, sendMany } from "./support/messaging.ts";

describe.skipIf(backendKind !== "postgres")("database connections lost (needs DATABASE_URL)", () => {
  test("the broker logs db connection lost, stays up and serves on new connections", async () => {
    const backend = await freshBackend();
    const databaseUrl = backend.databaseUrl!;
    const server = new URL(databaseUrl);
    const proxy = await startPostgresProxy({ host: server.hostname, port: Number(server.port) });
    const broker = await TestBroker.start({ DATABASE_URL: proxy.url(databaseUrl) }, { backend });
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    try {
      proxy.cutTypeQueries(1);
      // Every connection the broker holds ends; its next queries (the health ping
      // within a second) open new ones through the proxy, and one of them is terminated.
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()`;
      await waitUntil(() => proxy.cut === 1, 30_000, "a connection terminated as it read the types");
      await broker.process.waitForLog("db connection lost", 30_000);
      await waitUntil(async () => (await fetch(`${broker.url}/health`)).status === 200, 30_000, "/health 200");
      expect((await broker.admin.createMesh("after-the-cut")).slug).toBe("after-the-cut");
      expect(broker.process.exitCode).toBeNull();
      expect(broker.process.logs.filter((l) => l.msg === "unhandled rejection")).toEqual([]);
    } finally {
      await admin.end();
      await broker.dispose();
      await proxy.close();
      await backend.dispose();
    }
  });

  test("a send whose statement committed but whose answer was lost is acked as stored, once, and pushed at once", async () => {
    const backend = await freshBackend();
    const databaseUrl = backend.databaseUrl!;
    const server = new URL(databaseUrl);
    const proxy = await startPostgresProxy({ host: server.hostname, port: Number(server.port) });
    // A lease far longer than the test waits: the push must not come from its expiry.
    const broker = await TestBroker.start({ DATABASE_URL: proxy.url(databaseUrl), LEASE_SECONDS: "600" }, { backend });
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    const peers = new PeerPool();
    try {
      const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
      const [a, b] = members as [(typeof members)[0], (typeof members)[0]];
      const sender = await peers.connect(broker.wsUrl, a, mesh.id);
      const recipient = await peers.connect(broker.wsUrl, b, mesh.id);
      const ciphertext = Buffer.from("the answer to this commit is lost").toString("base64");
      proxy.loseAnswerTo(ciphertext);

      // No id: a sender told "internal" would send it again as a new message.
      const reply = await sender.send(b.pubkey, { ciphertext });
      expect(proxy.lost).toBe(1);
      expect(reply).toMatchObject({ type: "ack", recipients: 1, queued: true });
      expect(reply.duplicate).toBeUndefined();
      const stored = await admin<{ id: string }[]>`SELECT id FROM messages WHERE ciphertext = ${ciphertext}`;
      expect(stored.map((m) => m.id)).toEqual([reply.messageId as string]);
      const [push] = await recipient.waitForPushes(1);
      expect(push).toMatchObject({ messageId: reply.messageId, ciphertext, attempt: 1 });

      // In a batch: the stored sends are answered so, the others for themselves.
      // The first send is written alone, held a moment by a trigger, so the
      // three behind it are written as one statement.
      const wake = await sleepOnInsert(databaseUrl, { messageCiphertext: "Zmlyc3Q=" }, 0.3);
      const lostInBatch = Buffer.from("this batch's answer is lost").toString("base64");
      proxy.loseAnswerTo(lostInBatch);
      const frames = [
        sendFrame(b.pubkey, { ciphertext: "Zmlyc3Q=" }),
        sendFrame(b.pubkey, { ciphertext: lostInBatch }),
        sendFrame("#nobody-joined", {}),
        sendFrame(b.pubkey, { ciphertext: "bGFzdA==" }),
      ];
      const replies = await sendMany(sender, frames);
      expect(proxy.lost).toBe(2);
      expect(replies.map((r) => r.type === "error" ? r.code : r.type)).toEqual(["ack", "ack", "unknown_target", "ack"]);
      const pushes = await recipient.waitForPushes(4);
      expect(pushes.slice(1).map((p) => p.ciphertext)).toEqual(["Zmlyc3Q=", lostInBatch, "bGFzdA=="]);
      expect(pushes.slice(1).map((p) => p.messageId)).toEqual([0, 1, 3].map((i) => replies[i]!.messageId));
      // The lost statement held the send that stored nothing too (so it was answered by a statement of its own).
      const failed = broker.process.logs.filter((l) => l.msg === "send statement failed after its commit");
      expect(failed.map((l) => Number(l.sends) - Number(l.stored))).toEqual([0, 1]);
      expect(broker.process.exitCode).toBeNull();
      await wake();
    } finally {
      await peers.closeAll();
      await admin.end();
      await broker.dispose();
      await proxy.close();
      await backend.dispose();
    }
  });

  test("a statement or transaction whose new connection the server refused (57P03) runs again on another, once", async () => {
    const backend = await freshBackend();
    const proxy = await startPostgresProxy({ host: new URL(backend.databaseUrl!).hostname, port: Number(new URL(backend.databaseUrl!).port) });
    // Each case on a pool of its own that holds no connection yet, so its statement opens the refused one.
    const fresh = () => connect({ databaseUrl: proxy.url(backend.databaseUrl!), dataDir: "" });
    const dbs = await Promise.all([fresh(), fresh(), fresh()]);
    const [statements, transactions, refusedTwice] = dbs as [(typeof dbs)[0], (typeof dbs)[0], (typeof dbs)[0]];
    try {
      proxy.refuseConnections(1);
      expect(await statements.rows<{ one: number }>(sql`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
      expect(proxy.refused).toBe(1);
      proxy.refuseConnections(1);
      expect(await statements.relaxed.rows<{ one: number }>(sql`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
      expect(proxy.refused).toBe(2);

      proxy.refuseConnections(1);
      let runs = 0;
      const inTransaction = await transactions.transaction(async (tx) => {
        runs++;
        return tx.rows<{ one: number }>(sql`SELECT 1 AS one`);
      });
      expect({ inTransaction, runs, refused: proxy.refused }).toEqual({ inTransaction: [{ one: 1 }], runs: 1, refused: 3 });
      // Work that began is never run again, whatever it failed with.
      const refusedInside = Object.assign(new Error("a statement of the work was refused"), { code: "57P03" });
      const failed = await transactions
        .transaction(async () => {
          runs++;
          throw refusedInside;
        })
        .catch((error: unknown) => error);
      expect({ failed, runs }).toEqual({ failed: refusedInside, runs: 2 });

      // Refused again: the second refusal is the answer, and there is no third try.
      proxy.refuseConnections(2);
      const error = await refusedTwice.rows(sql`SELECT 1`).catch((e: unknown) => e);
      expect({ code: errorCode(error), refused: proxy.refused }).toEqual({ code: "57P03", refused: 5 });
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
      await proxy.close();
      await backend.dispose();
    }
  });
});
