// Database connections lost at the worst moments, through a proxy that ends
// them as a server does. A new one lost while postgres.js reads the server's
// array types (the first query of every connection it opens), as happens when
// the server stops or restarts just as the pool reconnects. One lost after a
// send statement committed, before its answer came: what it stored is stored,
// and must be answered and pushed so. And one ended inside a hello's
// transaction: that hello fails alone. What connect() and the patched driver
// do with each kind of loss is db-driver.test.ts.
import { describe, expect, test } from "bun:test";
import {
  backendKind,
  buildHello,
  holdOnInsert,
  PeerPool,
  RawWebSocket,
  rawPresence,
  setupMesh,
  sleepOnInsert,
  waitUntil,
  WebhookReceiver,
} from "@switchboard/testkit";
import postgres from "postgres";
import { brokerBehindProxy, pairBehindProxy } from "./support/behind-proxy.ts";
import { sendFrame, sendMany } from "./support/messaging.ts";

describe.skipIf(backendKind !== "postgres")("database connections lost (needs DATABASE_URL)", () => {
  test("a new connection lost as it reads the server's types leaves nothing unhandled: the broker stays up and serves", async () => {
    const { broker, proxy, databaseUrl, dispose } = await brokerBehindProxy();
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    try {
      proxy.cutTypeQueries(1);
      // Every connection the broker holds ends; its next queries (the health ping
      // within a second) open new ones through the proxy, and one of them is terminated.
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()`;
      await waitUntil(() => proxy.cut === 1, 30_000, "a connection terminated as it read the types");
      await waitUntil(async () => (await fetch(`${broker.url}/health`)).status === 200, 30_000, "/health 200");
      expect((await broker.admin.createMesh("after-the-cut")).slug).toBe("after-the-cut");
      expect(broker.process.exitCode).toBeNull();
      // The driver once left the types query's rejection unheld (porsager/postgres#1192).
      expect(broker.process.logs.filter((l) => l.msg === "unhandled rejection" || l.msg === "db connection lost")).toEqual([]);
    } finally {
      await admin.end();
      await dispose();
    }
  });

  test("a send whose statement committed but whose answer was lost is acked as stored, once, and pushed at once", async () => {
    // A lease far longer than the test waits: the push must not come from its expiry.
    const { broker, proxy, databaseUrl, dispose } = await brokerBehindProxy({ LEASE_SECONDS: "600" });
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
      await dispose();
    }
  });

  test("a send with an id whose statement waited on a lock as its connection was closed as silent is acked as stored, not as a duplicate of itself", async () => {
    const { broker, databaseUrl, sender, recipient, recipientKey, dispose } = await pairBehindProxy({ DB_ANSWER_TIMEOUT_SECONDS: "2", LEASE_SECONDS: "600" }, []);
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const ciphertext = Buffer.from("written while a lock held it").toString("base64");
      // The statement waits, silent past DB_ANSWER_TIMEOUT_SECONDS: its connection is closed, the
      // lookup finds nothing committed, and the send is written again, which waits for the first.
      const held = await holdOnInsert(databaseUrl, { messageCiphertext: ciphertext });
      const replied = sender.send(recipientKey, { ciphertext, id: "once-only" });
      await waitUntil(
        async () => (await admin<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'transactionid'`)[0]!.n > 0 || undefined,
        30_000,
        "the send written again, waiting for its first write",
      );
      await held.release();
      const reply = await replied;
      expect(broker.process.logs.some((l) => l.msg === "send failed; writing it again")).toBe(true);
      expect(reply).toMatchObject({ type: "ack", id: "once-only", recipients: 1 });
      expect(reply.duplicate).toBeUndefined();
      const stored = await admin<{ id: string }[]>`SELECT id FROM messages WHERE ciphertext = ${ciphertext}`;
      expect(stored.map((m) => m.id)).toEqual([reply.messageId as string]);
      const [push] = await recipient.waitForPushes(1);
      expect(push).toMatchObject({ messageId: reply.messageId, ciphertext, attempt: 1 });
    } finally {
      await admin.end();
      await dispose();
    }
  });

  test("a connection the server ends inside a hello's transaction fails that hello alone: the broker stays up and admits the next", async () => {
    const { broker, proxy, dispose } = await brokerBehindProxy({ DB_POOL_SIZE: "2" });
    try {
      const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
      const member = members[0]!;
      // The hello's transaction is the first statement since that carries the member's key.
      proxy.terminateOn(member.pubkey);
      const first = await RawWebSocket.open(broker.wsUrl);
      first.sendJson(await buildHello({ identity: member.identity, meshId: mesh.id }));
      const close = await first.waitFor(() => first.close ?? undefined, 15_000, "the failed hello's close");
      expect({ close, terminated: proxy.terminated }).toEqual({ close: { code: 1011, reason: expect.any(String) }, terminated: 1 });

      const second = await rawPresence(broker.wsUrl, mesh.id, member.identity);
      second.destroy();
      expect(broker.process.exitCode).toBeNull();
      expect(broker.process.logs.filter((l) => (l.level ?? 0) >= 60)).toEqual([]);
      // The database went away under it: a warning, not an error (the level an operator is paged for).
      expect(broker.process.logs.filter((l) => l.msg === "ws frame failed").map((l) => l.level)).toEqual([40]);
    } finally {
      await dispose();
    }
  });
  test("a webhook attempt whose connection the server ends is a warning, not an error; the next attempt delivers", async () => {
    const { broker, proxy, dispose } = await brokerBehindProxy({
      WEBHOOK_ALLOW_PRIVATE: "true",
      WEBHOOK_BACKOFF_MIN_MS: "200",
      WEBHOOK_BACKOFF_MAX_MS: "200",
      WEBHOOK_TIMEOUT_MS: "1000",
      LEASE_SECONDS: "2",
      CATCH_UP_INTERVAL_MS: "300",
    });
    let failing = true;
    const receiver = await WebhookReceiver.start(() => ({ status: failing ? 500 : 200 }));
    const peers = new PeerPool();
    try {
      const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
      const [sender, hook] = members as [(typeof members)[0], (typeof members)[0]];
      await broker.admin.setWebhook(mesh.id, hook.id, `${receiver.url}/events`, "webhook-secret-0123456789");
      const peer = await peers.connect(broker.wsUrl, sender, mesh.id);
      await sendMany(peer, [sendFrame(hook.pubkey)]);
      await receiver.waitFor((r) => r.length >= 1, 15_000, "a first, failing request");
      // The next statement of an attempt (the one under way records its end, or
      // the retry takes the webhook) names the member: its connection is ended
      // under it. Whatever it held is taken over once its lease runs out (6 s).
      proxy.terminateOn(hook.id);
      const line = await broker.process.waitForLog("webhook attempt failed", 15_000);
      expect({ level: line.level, terminated: proxy.terminated }).toEqual({ level: 40, terminated: 1 });
      failing = false;
      await waitUntil(() => broker.process.logs.some((l) => l.msg === "webhook" && l.outcome === "ok"), 30_000, "a delivered request");
      expect(broker.process.logs.filter((l) => (l.level ?? 0) >= 50)).toEqual([]);
    } finally {
      await peers.closeAll();
      await receiver.stop();
      await dispose();
    }
  });
});
