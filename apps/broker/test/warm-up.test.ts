// A starting instance opens its pool and plans both send statements (the
// direct one and the one for any batch) on every connection before it serves
// (services/warm-up.ts). Read in the log of a Postgres server of the test's
// own, which logs every step of every statement with the process that ran
// it: by the time the broker listens, each connection of its pool has run
// each statement for each warmed batch size, and a send afterwards runs it
// as prepared, without parsing it again.
import { afterAll, describe, expect, test } from "bun:test";
import {
  ownPostgresTestsRun,
  postgresBackend,
  setupMesh,
  startPostgresCluster,
  TestBroker,
  TestPeer,
  type PostgresCluster,
  type SetupMember,
} from "@switchboard/testkit";
import { WARMED_BATCH_SIZES } from "../src/services/warm-up.ts";

const POOL_SIZE = 4;

interface SendStatementStep {
  pid: string;
  step: "parse" | "bind" | "execute";
  /** The statement and its batch size (its LIMIT): `direct 4`, `any 4`. */
  shape: string;
}

const SHAPES = WARMED_BATCH_SIZES.flatMap((n) => [`direct ${n}`, `any ${n}`]);

/** The steps of the send statements in a log whose lines start with `<pid>:`. */
function sendStatementSteps(log: string): SendStatementStep[] {
  const steps: SendStatementStep[] = [];
  // An entry runs from a line with the prefix to the next one (a statement's text spans lines).
  for (const entry of log.split(/\n(?=\d+:)/)) {
    const head = /^(\d+):LOG: {2}duration: [0-9.]+ ms {2}(parse|bind|execute) [^:]*: /.exec(entry);
    const limit = /json_to_recordset\([^)]*\)\s+AS q\(idx int[^)]*\)\s+LIMIT (\d+)/.exec(entry)?.[1];
    if (head === null || limit === undefined) continue;
    // Only the send statement for any batch may lease elsewhere.
    const shape = `${entry.includes("elsewhere AS (") ? "any" : "direct"} ${limit}`;
    steps.push({ pid: head[1]!, step: head[2] as SendStatementStep["step"], shape });
  }
  return steps;
}

describe.skipIf(!ownPostgresTestsRun())("warm-up", () => {
  let cluster: PostgresCluster | undefined;
  let broker: TestBroker | undefined;
  afterAll(async () => {
    await broker?.dispose();
    await cluster?.destroy();
  });

  test(`before it listens, every connection of the pool (DB_POOL_SIZE=${POOL_SIZE}) has both send statements for batches of ${WARMED_BATCH_SIZES.join(", ")}; a send then parses nothing`, async () => {
    cluster = await startPostgresCluster({ settings: { log_min_duration_statement: "0", log_line_prefix: "%p:" } });
    const backend = await postgresBackend(cluster.url());
    broker = await TestBroker.start({ DB_POOL_SIZE: String(POOL_SIZE) }, { backend });

    const byProcess = new Map<string, Set<string>>();
    for (const s of sendStatementSteps(cluster.log()).filter((s) => s.step === "execute")) {
      byProcess.set(s.pid, (byProcess.get(s.pid) ?? new Set<string>()).add(s.shape));
    }
    const warmed = [...byProcess.values()].filter((shapes) => SHAPES.every((shape) => shapes.has(shape)));
    expect(warmed.length).toBe(POOL_SIZE);
    expect(broker.process.logs.some((l) => l.msg === "pool warmed" && l.connections === POOL_SIZE)).toBe(true);

    // Parsed once per connection, statement and batch size, by the warm-up.
    const parsedBefore = sendStatementSteps(cluster.log()).filter((s) => s.step === "parse").length;
    expect(parsedBefore).toBe(POOL_SIZE * SHAPES.length);
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const peer = await TestPeer.connect(broker.wsUrl, { identity: alice.identity, meshId: mesh.id });
    try {
      await peer.send(bob.pubkey, { nonce: "plain", ciphertext: Buffer.from('"hi"').toString("base64") });
    } finally {
      await peer.close();
    }
    const after = sendStatementSteps(cluster.log());
    expect(after.filter((s) => s.step === "execute").length).toBeGreaterThan(POOL_SIZE * SHAPES.length);
    expect(after.filter((s) => s.step === "parse").length).toBe(parsedBefore);
  });
});
