// What all of an instance's sockets hold unsent, together
// (INSTANCE_SOCKET_BUFFER_BYTES): past it, the backed-up socket holding the
// most is closed as stalled at once, long before STALLED_PRESENCE_SECONDS,
// and one holding less stays. The readers are real TCP sockets that stop
// reading, backed up by history pages they asked for and do not read.
import { afterEach, expect, test } from "bun:test";
import { filler, PeerPool, setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { scrape, sendFrame, sendMany } from "./support/messaging.ts";
import { rawPresence } from "./support/pressure.ts";

// Well above what the first reader holds by the time the gauge (swept every 200 ms) says it backed up.
const LIMIT_BYTES = 16 * 1024 * 1024;
const broker = useTestBroker({
  // Each socket alone may hold far more than the instance's limit.
  SOCKET_BUFFER_BYTES: String(256 * 1024 * 1024),
  INSTANCE_SOCKET_BUFFER_BYTES: String(LIMIT_BYTES),
  STALLED_PRESENCE_SECONDS: "3600",
  SWEEP_INTERVAL_MS: "200",
  CONTROL_RATE_LIMIT_PER_MIN: "100000",
  SEND_RATE_LIMIT_PER_MIN: "100000",
});

const pool = new PeerPool();
afterEach(() => pool.closeAll());

const gauges = async () => {
  const metrics = await scrape(broker.url);
  return { congested: metrics.get("broker_presences_congested") ?? 0, unsent: metrics.get("broker_socket_unsent_bytes") ?? 0 };
};

test("past the instance's limit, the backed-up socket holding the most is closed with 1013; the other stays", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["big", "small", "writer"] });
  const [big, small, writer] = members as [SetupMember, SetupMember, SetupMember];
  const sender = await pool.connect(broker.wsUrl, writer, mesh.id);
  await sender.request({ type: "join", channel: "#pages" });
  await sendMany(sender, Array.from({ length: 20 }, () => sendFrame("#pages", { ciphertext: filler(60_000) })), 60_000);
  await sender.close();

  const reader = async (member: SetupMember) => {
    const socket = await rawPresence(broker, mesh.id, member);
    socket.sendJson({ type: "join", channel: "#pages", reqId: "join" });
    await socket.waitFor(() => (socket.messages.some((m) => m.includes('"reqId":"join"')) ? true : undefined), 10_000, "the join's answer");
    socket.pause();
    return socket;
  };
  const present = async (member: SetupMember) => (await broker.admin.peers(mesh.id)).some((p) => p.pubkey === member.pubkey);
  // Pages of about a megabyte, one at a time, until `done`: the kernel's buffers take the first few.
  const ask = async (socket: Awaited<ReturnType<typeof reader>>, done: () => Promise<boolean>, most: number) => {
    let asked = 0;
    for (; asked < most && !(await done()); asked++) {
      socket.sendJson({ type: "history", target: "#pages", limit: 200, reqId: `h-${asked}` });
      await Bun.sleep(100);
    }
    return asked;
  };

  const smallReader = await reader(small);
  const smallAsked = await ask(smallReader, async () => (await gauges()).congested >= 1, 60);
  expect((await gauges()).congested).toBe(1);
  const bigReader = await reader(big);
  // It holds ever more: past the limit, it is the one closed.
  const bigAsked = await ask(bigReader, async () => !(await present(big)), 200);
  expect({ bigPresent: await present(big), smallPresent: await present(small) }).toEqual({ bigPresent: false, smallPresent: true });
  bigReader.resume();
  await bigReader.waitFor(() => bigReader.close ?? undefined, 30_000, `the close frame (after ${bigAsked} pages)`);
  expect(bigReader.close).toEqual({ code: 1013, reason: "stalled" });

  // The one left is still backed up, and what it holds is within the limit.
  await waitUntil(async () => ((await gauges()).congested === 1 ? true : undefined), 10_000, "the gauges' next sweep");
  const { unsent } = await gauges();
  expect({ smallAsked: smallAsked > 0, held: unsent > 0 && unsent <= LIMIT_BYTES }).toEqual({ smallAsked: true, held: true });
  expect(await present(small)).toBe(true);
  bigReader.destroy();
  smallReader.destroy();
});
