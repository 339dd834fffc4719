// The embedded database (PGlite, one process, no checkpointer) writes a
// checkpoint only when it closes: without one from the broker, pg_wal keeps
// every byte written since the start, for as long as the broker runs. On an
// embedded database whatever backend the run is on: it is the default a
// newcomer gets.
import { afterEach, describe, expect, test } from "bun:test";
import { embeddedBackend, setupMesh, TestBroker, waitUntil } from "@switchboard/testkit";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { peersOfEachTest, sendFrame, sendMany } from "./support/messaging.ts";

const { pool, connect } = peersOfEachTest();
let broker: TestBroker | undefined;
afterEach(async () => {
  await pool.closeAll();
  await broker?.dispose();
  broker = undefined;
});

const segments = (dataDir: string) => readdirSync(join(dataDir, "pgdata", "pg_wal")).filter((name) => /^[0-9A-F]{24}$/.test(name));

describe("an embedded broker's write-ahead log", () => {
  test("segments written before its traffic are removed or recycled while it runs, not kept until it stops", async () => {
    const backend = embeddedBackend({ withSchema: true });
    broker = await TestBroker.start({ HOUSEKEEPING_INTERVAL_MS: "100", MAX_MESSAGE_BYTES: "2000000" }, { backend });
    const dataDir = backend.dataDir!;
    const before = segments(dataDir);
    expect(before.length).toBeGreaterThan(0);

    const { mesh, members } = await setupMesh(broker.admin, { members: ["sender", "away"] });
    const sender = await connect(broker, mesh.id, members[0]!);
    // About 45 MB of messages that do not compress: three segments of 16 MB.
    const body = () => Buffer.from(crypto.getRandomValues(new Uint8Array(700_000))).toString("base64");
    for (let round = 0; round < 6; round++) {
      const replies = await sendMany(
        sender,
        Array.from({ length: 8 }, () => sendFrame(members[1]!.pubkey, { ciphertext: body() })),
      );
      for (const reply of replies) expect(reply).toMatchObject({ type: "ack", queued: true });
    }

    await waitUntil(() => !segments(dataDir).some((name) => before.includes(name)), 60_000, `segments ${before.join(", ")} gone`).catch(
      (error) => {
        throw new Error(`${String(error)}; pg_wal holds ${segments(dataDir).join(", ")}`);
      },
    );
  }, 180_000);
});
