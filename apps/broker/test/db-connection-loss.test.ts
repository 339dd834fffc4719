// A new database connection that is lost while postgres.js reads the server's
// array types (the first query of every connection it opens) rejects a promise
// of the driver's that nobody holds (porsager/postgres#1192). It happens when
// the server stops or restarts just as the pool reconnects; the broker must
// take it as the lost connection it is and not exit.
import { describe, expect, test } from "bun:test";
import { backendKind, freshBackend, startPostgresProxy, TestBroker, waitUntil } from "@switchboard/testkit";
import postgres from "postgres";

describe.skipIf(backendKind !== "postgres")("a database connection lost as it opens (needs DATABASE_URL)", () => {
  test("the broker logs db connection lost, stays up and serves on new connections", async () => {
    const backend = await freshBackend();
    const databaseUrl = backend.databaseUrl!;
    const server = new URL(databaseUrl);
    const proxy = await startPostgresProxy({ host: server.hostname, port: Number(server.port) });
    const broker = await TestBroker.start({ DATABASE_URL: proxy.url(databaseUrl) }, { backend });
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    try {
      proxy.cutTypeQueries(1);
      // Every connection the broker holds ends; its next queries (the health ping
      // within a second) open new ones through the proxy, and one of them is terminated.
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()`;
      await waitUntil(() => proxy.cut === 1, 30_000, "a connection terminated as it read the types");
      await broker.process.waitForLog("db connection lost", 30_000);
      await waitUntil(async () => (await fetch(`${broker.url}/health`)).status === 200, 30_000, "/health 200");
      expect((await broker.admin.createMesh("after-the-cut")).slug).toBe("after-the-cut");
      expect(broker.process.exitCode).toBeNull();
      expect(broker.process.logs.filter((l) => l.msg === "unhandled rejection")).toEqual([]);
    } finally {
      await admin.end();
      await broker.dispose();
      await proxy.close();
      await backend.dispose();
    }
  });
});
