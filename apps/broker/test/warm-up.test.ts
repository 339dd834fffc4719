// A starting instance opens its pool and plans the send statement on every
// connection before it serves (services/warm-up.ts). Read in the log of a
// Postgres server of the test's own, which logs every statement with the
// process that ran it: by the time the broker listens, each connection of
// its pool has run the statement for each warmed batch size.
import { afterAll, describe, expect, test } from "bun:test";
import { ownPostgresTestsRun, postgresBackend, startPostgresCluster, TestBroker, type PostgresCluster } from "@switchboard/testkit";
import { WARMED_BATCH_SIZES } from "../src/services/warm-up.ts";

const POOL_SIZE = 4;

/** The batch sizes (their LIMIT) of the send statements each server process ran, from a log whose lines start with `<pid>:`. */
function sendStatementsByProcess(log: string): Map<string, Set<number>> {
  const byProcess = new Map<string, Set<number>>();
  // An entry runs from a line with the prefix to the next one (a statement's text spans lines).
  for (const entry of log.split(/\n(?=\d+:)/)) {
    const pid = /^(\d+):LOG: {2}duration: [0-9.]+ ms {2}execute [^:]*: /.exec(entry)?.[1];
    const limit = /jsonb_to_recordset\([^)]*\)\s+AS q\(idx int[^)]*\)\s+LIMIT (\d+)/.exec(entry)?.[1];
    if (pid === undefined || limit === undefined) continue;
    const sizes = byProcess.get(pid) ?? new Set<number>();
    byProcess.set(pid, sizes.add(Number(limit)));
  }
  return byProcess;
}

describe.skipIf(!ownPostgresTestsRun())("warm-up", () => {
  let cluster: PostgresCluster | undefined;
  let broker: TestBroker | undefined;
  afterAll(async () => {
    await broker?.dispose();
    await cluster?.destroy();
  });

  test(`before it listens, every connection of the pool (DB_POOL_SIZE=${POOL_SIZE}) has run the send statement for batches of ${WARMED_BATCH_SIZES.join(", ")}`, async () => {
    cluster = await startPostgresCluster({ settings: { log_min_duration_statement: "0", "log_line_prefix": "%p:" } });
    const backend = await postgresBackend(cluster.url());
    broker = await TestBroker.start({ DB_POOL_SIZE: String(POOL_SIZE) }, { backend });
    const warmed = [...sendStatementsByProcess(cluster.log()).values()].filter((sizes) => WARMED_BATCH_SIZES.every((n) => sizes.has(n)));
    expect(warmed.length).toBe(POOL_SIZE);
    expect(broker.process.logs.some((l) => l.msg === "pool warmed" && l.connections === POOL_SIZE)).toBe(true);
  });
});
