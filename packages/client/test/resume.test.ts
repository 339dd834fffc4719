// The SDK's resume guarantee: a stream of sends survives the broker being
// SIGKILLed and restarted on the same port mid-stream. The receiver's
// application sees every message exactly once; every send() resolves.
import { afterEach, expect, test } from "bun:test";
import { freePort, sendLeaseProbe, setupMesh, TestBroker, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import { SwitchboardClient, type SendResult } from "../src/index.ts";
import { collect, recordingWebSocket, type RawFrame } from "./support.ts";

const TOTAL = 300;
const KILL_AT = 100;

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

test("300 messages across a broker SIGKILL and restart: each seen once, every send resolves", async () => {
  const port = await freePort();
  // Same backend, same port: the clients reconnect to the URL they know.
  const broker = new TestBroker({ BROKER_PORT: String(port), LEASE_SECONDS: "2" });
  cleanup.push(() => broker.dispose());
  await broker.start();
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob", "prober", "probe"] });
  const [alice, bob, proberMember, probeMember] = members as [SetupMember, SetupMember, SetupMember, SetupMember];

  const options = (m: SetupMember) => ({
    url: `http://127.0.0.1:${port}`,
    meshId: mesh.slug,
    secretKey: m.identity.secretKey,
    sessionId: `${m.displayName}-session`,
    reconnect: { minDelayMs: 50, maxDelayMs: 500, maxAttempts: 200 },
  });
  const bobFrames: RawFrame[] = [];
  const b = await SwitchboardClient.connect({ ...options(bob), WebSocket: recordingWebSocket(bobFrames) });
  cleanup.push(() => b.close());
  const a = await SwitchboardClient.connect(options(alice));
  cleanup.push(() => a.close());
  const [gotA, gotB] = [collect(a), collect(b)];
  const bobPresenceBefore = b.presenceId;
  let aDown = false;
  let sentWhileDown = 0;
  a.on("close", () => {
    aDown = true;
  });
  a.on("open", () => {
    aDown = false;
  });

  const sends: Array<Promise<SendResult>> = [];
  let restarted: Promise<TestBroker> | undefined;
  let seenAtKill = -1;
  let resolvedAtKill = -1;
  let resolved = 0;
  for (let i = 0; i < TOTAL; i++) {
    if (aDown) sentWhileDown++;
    const p = a.send(bob.pubkey, { seq: i });
    void p.then(() => resolved++);
    sends.push(p);
    if (i === KILL_AT) {
      // Mid-stream for certain: bob has some of it (a busy machine may not have pushed any yet).
      await waitUntil(() => gotB.messages.length > 0, 15_000, "bob's first message before the kill");
      seenAtKill = gotB.messages.length;
      resolvedAtKill = resolved;
      broker.process.kill("SIGKILL");
      await broker.process.exited;
      // Keep sending while the new broker starts: those sends wait in the outbox.
      restarted = broker.start();
    }
    await Bun.sleep(5);
  }
  await restarted;

  let timer: Timer | undefined;
  const results = await Promise.race([
    Promise.all(sends),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`only ${resolved} of ${TOTAL} sends resolved within 60 s`)), 60_000);
    }),
  ]).finally(() => clearTimeout(timer));
  await waitUntil(() => gotB.messages.length >= TOTAL, 60_000, `bob's ${TOTAL} messages (has ${gotB.messages.length})`);
  // Any redelivery would show up as a second copy if de-dup failed: by a probe's third push every
  // delivery leased before it and not acked has been pushed again.
  const [prober, probe] = await Promise.all(
    [proberMember, probeMember].map((m) => TestPeer.connect(broker.wsUrl, { identity: m.identity, meshId: mesh.id })),
  );
  cleanup.push(() => Promise.all([prober!.close(), probe!.close()]));
  await (await sendLeaseProbe(prober!, probe!))(3);

  // The kill really happened mid-stream.
  expect(seenAtKill).toBeGreaterThan(0);
  expect(seenAtKill).toBeLessThan(TOTAL);
  expect(resolvedAtKill).toBeLessThan(TOTAL);
  expect(sentWhileDown).toBeGreaterThan(0);
  expect(gotA.reconnects).toBeGreaterThanOrEqual(1);
  expect(gotB.reconnects).toBeGreaterThanOrEqual(1);
  expect(b.presenceId).not.toBe(bobPresenceBefore);

  expect(results).toHaveLength(TOTAL);
  expect(new Set(results.map((r) => r.messageId)).size).toBe(TOTAL);
  const seqs = gotB.messages.map((m) => (m.payload as { seq: number }).seq);
  expect(seqs).toHaveLength(TOTAL);
  expect([...seqs].sort((x, y) => x - y)).toEqual(Array.from({ length: TOTAL }, (_, i) => i));
  expect(new Set(gotB.messages.map((m) => m.messageId)).size).toBe(TOTAL);
  expect(gotB.messages.every((m) => m.encrypted)).toBe(true);
  expect(gotB.errors).toEqual([]);

  const inOrder = seqs.every((s, i) => i === 0 || s > seqs[i - 1]!);
  const duplicates = results.filter((r) => r.duplicate).length;
  console.log(
    `resume: ${seenAtKill} seen and ${resolvedAtKill} acked at the kill; ${sentWhileDown} sent while down; ${duplicates} sends answered duplicate; ` +
      `${bobFrames.filter((f) => f.type === "push").length} pushes reached bob; reconnects a=${gotA.reconnects} b=${gotB.reconnects}; first-seen order ${inOrder ? "kept" : "NOT kept"}`,
  );
});
