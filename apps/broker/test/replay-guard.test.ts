// The replay guard keeps an accepted hello's signature until the hello's own
// timestamp plus 70 s — past that the ±60 s clock window refuses it anyway —
// and both are judged by the database's clock, which every instance shares,
// so an instance whose own clock is off opens no window for a replay. Reads
// the guard's rows, so it needs a Postgres server beside the broker.
import { describe, expect, test } from "bun:test";
import { backendKind, setupMesh, TestPeer, useTestBroker } from "@switchboard/testkit";
import { queryPostgres } from "./support/messaging.ts";

describe.skipIf(backendKind !== "postgres")("the replay guard", () => {
  const broker = useTestBroker();

  test("keeps a signature until its hello's timestamp plus 70 s, and refuses it again meanwhile", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const timestamp = Date.now() - 50_000;
    const peer = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id, timestamp });
    const signature = String(peer.helloFrame?.signature);
    const rows = await queryPostgres(
      broker.backend,
      (sql) => sql<Array<{ ms: number }>>`
        SELECT (extract(epoch FROM expires_at) * 1000)::float8 AS ms FROM hello_replays WHERE signature = ${signature}`,
    );
    expect(rows?.map((r) => Math.round(Number(r.ms)))).toEqual([timestamp + 70_000]);
    await peer.close();
    const again = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id, hello: false });
    again.sendFrame(peer.helloFrame!);
    expect(await again.nextFrame("error")).toMatchObject({ code: "replayed" });
    await again.close();
  });
});
