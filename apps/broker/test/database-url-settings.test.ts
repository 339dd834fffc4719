// Settings in DATABASE_URL's query reach the server as each connection
// starts, over the ones the broker's pools ask for. The broker keeps its own
// where it depends on them: the application_name another instance ends a
// reaped one's sessions by (frozen-instance-sessions.test.ts), the timeout
// that ends a frozen transaction, the plans its statements are written for,
// and the relaxed pool's commits without a WAL flush. The URL's other
// settings still apply. Real Postgres, real connections.
import { describe, expect, test } from "bun:test";
import { connect } from "@switchboard/db";
import { backendKind, freshBackend, TestBroker, waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import postgres from "postgres";

const URL_SETTINGS = "application_name=mine&idle_in_transaction_session_timeout=0&plan_cache_mode=auto&synchronous_commit=on&statement_timeout=54321";

describe.skipIf(backendKind !== "postgres")("settings in DATABASE_URL (needs DATABASE_URL)", () => {
  test("the broker's own settings hold on every connection; the URL's others apply", async () => {
    const backend = await freshBackend();
    const db = await connect({ databaseUrl: `${backend.databaseUrl}?${URL_SETTINGS}`, dataDir: "", applicationName: "switchboard url-settings-1" });
    const direct = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      const show = sql`SELECT current_setting('application_name') AS name, current_setting('idle_in_transaction_session_timeout') AS idle,
        current_setting('plan_cache_mode') AS plans, current_setting('synchronous_commit') AS sync, current_setting('statement_timeout') AS timeout`;
      const broker = { name: "switchboard url-settings-1", idle: "10s", plans: "force_generic_plan", timeout: "54321ms" };
      expect(await db.rows(show)).toEqual([{ ...broker, sync: "on" }]);
      expect(await db.transaction((tx) => tx.rows(show))).toEqual([{ ...broker, sync: "on" }]);
      expect(await db.relaxed.rows(show)).toEqual([{ ...broker, sync: "off" }]);
      const stop = await db.listen("url_settings_probe", () => {});
      try {
        const names = await direct<{ name: string; n: number }[]>`
          SELECT application_name AS name, count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1`;
        // The pool's, the relaxed pool's and the listener's connections, all under the broker's name.
        expect(names.map((r) => r.name)).toEqual(["switchboard url-settings-1"]);
        expect(names[0]!.n).toBeGreaterThanOrEqual(3);
      } finally {
        await stop();
      }
    } finally {
      await direct.end();
      await db.close();
      await backend.dispose();
    }
  });

  test("a broker started on such a URL names its sessions for its instance and says which settings it replaced", async () => {
    const backend = await freshBackend({ withSchema: true });
    const broker = await TestBroker.start({ DATABASE_URL: `${backend.databaseUrl}?${URL_SETTINGS}` }, { backend });
    const direct = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      const { instanceId } = (await (await fetch(`${broker.url}/health`)).json()) as { instanceId: string };
      const names = async () =>
        (await direct<{ name: string }[]>`
          SELECT DISTINCT application_name AS name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).map((r) => r.name);
      await waitUntil(async () => (await names()).length > 0 || undefined, 10_000, "the broker's sessions");
      expect(await names()).toEqual([`switchboard ${instanceId}`]);
      const warned = broker.process.logs.filter((l) => l.msg === "db url settings replaced");
      expect(warned.map((l) => l.settings)).toEqual([["plan_cache_mode", "idle_in_transaction_session_timeout", "application_name"]]);
    } finally {
      await direct.end();
      await broker.dispose();
      await backend.dispose();
    }
  });
});
