// A Postgres server of a test's own: a port taken between freePort() and the
// start (a broker may bind it first) costs a retry, not a failed test; any
// other failed start says what the server logged and leaves nothing behind.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import postgres from "postgres";
import { ownPostgresTestsRun, startPostgresCluster } from "../src/postgres-cluster.ts";

describe.skipIf(!ownPostgresTestsRun())("startPostgresCluster", () => {
  test("a port taken before the start: the server starts on another one and answers", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const cluster = await startPostgresCluster({ port: taken.port });
      try {
        expect(cluster.port).not.toBe(taken.port);
        const sql = postgres(cluster.url(), { max: 1, onnotice: () => {} });
        try {
          expect([...(await sql`SELECT 1 AS one`)]).toEqual([{ one: 1 }]);
        } finally {
          await sql.end();
        }
      } finally {
        await cluster.destroy();
      }
    } finally {
      taken.stop(true);
    }
  });

  test("a start that fails otherwise throws with the server's log and removes its directory", async () => {
    const failure = await startPostgresCluster({ maxConnections: 0 }).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure?.message).toContain("server log:");
    expect(failure?.message).toContain("max_connections");
    const dir = /-D (\S+)\/data /.exec(failure?.message ?? "")?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
  });
});
