// A client that says it is initialized more than once (a second
// notifications/initialized, each of which starts the presence) gets the one
// presence it has: a second one, of the same session id, would replace the
// first, whose close left every tool answering "replaced".
import { expect, test } from "bun:test";
import type { SwitchboardClient } from "@switchboard/client";
import { setupMesh, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { BrokerLink } from "../src/mcp/link.ts";
import { createLogger } from "../src/mcp/log.ts";

const broker = useTestBroker();

test("starting the link again connects no second client; the first stays the one the tools use", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
  const [alice] = members as [SetupMember];
  const clients: SwitchboardClient[] = [];
  const link = new BrokerLink(
    { url: broker.url, meshId: mesh.id, secretKey: alice.identity.secretKey, sessionId: "twice", acks: "manual", offline: "fail" },
    createLogger({ LOG_LEVEL: "silent" }),
    (client) => clients.push(client),
  );
  try {
    await link.start();
    await link.start();
    expect(clients).toHaveLength(1);
    const client = link.client();
    expect(client).toBe(clients[0]!);
    expect((await client.listPeers()).map((p) => p.presences.length)).toEqual([1]);
  } finally {
    await link.stop();
  }
});
