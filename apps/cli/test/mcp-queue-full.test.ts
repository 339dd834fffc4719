// send_message to a member whose queue is full (MAX_QUEUED_PER_MEMBER): the
// tool says `queue_full` for that member alone, and `full_queues` for a send
// to many that skipped it, so the model knows who did not get it.
import { afterAll, expect, test } from "bun:test";
import { gaugeOf, setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { CliHome } from "./support/cli.ts";
import { keyFileFor, startMcp } from "./support/mcp.ts";

const broker = useTestBroker({ MAX_QUEUED_PER_MEMBER: "1", HOUSEKEEPING_INTERVAL_MS: "100" });
const home = new CliHome();
afterAll(() => home.dispose());

test("send_message: queue_full for a full member alone, full_queues for a send to many", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob", "carol"] });
  const [alice, bob] = members as [SetupMember, SetupMember, SetupMember];
  const session = await startMcp(home, { url: broker.url, mesh: mesh.slug, keyFile: keyFileFor(home, alice.identity), args: ["--session", "full"] });
  try {
    await session.connected();
    expect((await session.call("send_message", { to: bob.pubkey, text: "one" })).data).toMatchObject({ recipients: 1 });
    await waitUntil(async () => (await gaugeOf(broker.url, "broker_members_queue_full")) === 1, 10_000, "bob's queue marked full");

    const refused = await session.call("send_message", { to: bob.pubkey, text: "two" });
    expect(refused.isError).toBe(true);
    expect(refused.data).toMatchObject({ error: { code: "queue_full" } });

    const toAll = await session.call("send_message", { to: "*", text: "everyone" });
    expect(toAll.isError).toBe(false);
    expect(toAll.data).toMatchObject({ recipients: 1, full_queues: 1, target: "*" });
  } finally {
    await session.close();
  }
});
