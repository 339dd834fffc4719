// A member's queue bound (MAX_QUEUED_PER_MEMBER) as the SDK reports it, over
// a socket and over HTTP: a send to the full member alone fails `queue_full`,
// a send to many resolves with how many full queues it skipped.
import { afterEach, describe, expect, test } from "bun:test";
import { gaugeOf, setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { HttpSender, SwitchboardClient } from "../src/index.ts";

const broker = useTestBroker({ MAX_QUEUED_PER_MEMBER: "1", HOUSEKEEPING_INTERVAL_MS: "100" });
const clients: SwitchboardClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe("a full queue, as the SDK reports it", () => {
  test("send and HttpSender.send: queue_full for the member alone, fullQueues for many", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const [alice, offline, online] = members as [SetupMember, SetupMember, SetupMember];
    const client = await SwitchboardClient.connect({ url: broker.url, meshId: mesh.id, secretKey: alice.identity.secretKey });
    clients.push(client);
    // The third member takes what it is sent: a queue of its own would fill at this bound too.
    const taker = await SwitchboardClient.connect({ url: broker.url, meshId: mesh.id, secretKey: online.identity.secretKey });
    clients.push(taker);
    const http = await HttpSender.create({ url: broker.url, token: await broker.admin.createApiToken(mesh.id, alice.id) });

    expect(await client.send(offline.pubkey, { n: 1 })).toMatchObject({ recipients: 1, fullQueues: 0 });
    await waitUntil(async () => (await gaugeOf(broker.url, "broker_members_queue_full")) === 1, 10_000, "the queue marked full");

    await expect(client.send(offline.pubkey, { n: 2 })).rejects.toMatchObject({ code: "queue_full" });
    expect(await client.send("*", { n: 3 }, { encrypt: false })).toMatchObject({ recipients: 1, fullQueues: 1, duplicate: false });

    await expect(http.send(offline.pubkey, { n: 4 })).rejects.toMatchObject({ code: "queue_full", httpStatus: 429 });
    expect(await http.send("*", { n: 5 })).toMatchObject({ recipients: 1, fullQueues: 1, duplicate: false });
  });
});
