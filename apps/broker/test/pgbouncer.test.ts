// The broker through a real PgBouncer. In session mode, configured as
// docs/deploy.md says, it serves. In transaction mode its LISTEN holds only on
// the server connection that ran it, which then serves other clients: the
// instance would serve deaf to the others' notices, its prepared statements
// failing now and then, so its start stops with `bus_unheard` and status 78.
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  AdminClient,
  backendKind,
  findPgBouncer,
  freshBackend,
  REPO_ROOT,
  setupMesh,
  spawnBroker,
  spawnRaw,
  startPgBouncer,
  TEST_ADMIN_TOKEN,
  TestPeer,
  type SetupMember,
  type TestBackend,
} from "@switchboard/testkit";
import postgres from "postgres";

const pgbouncer = findPgBouncer();
if (!pgbouncer && process.env.CI && backendKind === "postgres") throw new Error("CI must provide pgbouncer (Debian's pgbouncer package)");

/** The `ignore_startup_parameters` docs/deploy.md tells an operator to set. */
function documentedIgnoredParameters(): string {
  const deploy = readFileSync(join(REPO_ROOT, "docs", "deploy.md"), "utf8");
  const line = /^ignore_startup_parameters = (\S+)$/m.exec(deploy);
  if (!line) throw new Error("docs/deploy.md gives no ignore_startup_parameters line");
  return line[1]!;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function backend(): Promise<TestBackend> {
  const b = await freshBackend();
  cleanups.push(() => b.dispose());
  return b;
}

describe.skipIf(backendKind !== "postgres" || !pgbouncer)("the broker through PgBouncer", () => {
  test("in session mode, set up as docs/deploy.md says, it serves", async () => {
    const db = await backend();
    const bouncer = await startPgBouncer({ databaseUrl: db.databaseUrl!, poolMode: "session", ignoreStartupParameters: documentedIgnoredParameters() });
    cleanups.push(() => bouncer.stop());
    const broker = await spawnBroker({ ...db.env, DATABASE_URL: bouncer.url, ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    cleanups.push(() => broker.stop());

    const { mesh, members } = await setupMesh(new AdminClient(broker.url, TEST_ADMIN_TOKEN), { members: ["sender", "recipient"] });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const from = await TestPeer.connect(broker.wsUrl, { identity: sender.identity, meshId: mesh.id });
    const to = await TestPeer.connect(broker.wsUrl, { identity: recipient.identity, meshId: mesh.id, autoAck: true });
    cleanups.push(() => Promise.all([from.close(), to.close()]));
    const ack = await from.send(recipient.pubkey);
    const [push] = await to.waitForPushes(1);
    expect(push?.messageId).toBe(ack.messageId);
  });

  test("in transaction mode, its start stops with bus_unheard and status 78, leaving no running instance", async () => {
    const db = await backend();
    const bouncer = await startPgBouncer({ databaseUrl: db.databaseUrl!, poolMode: "transaction", ignoreStartupParameters: documentedIgnoredParameters() });
    cleanups.push(() => bouncer.stop());
    const proc = spawnRaw({ ...db.env, DATABASE_URL: bouncer.url, ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    const stderr = new Response(proc.stderr).text();
    // Its three probes take about 9 s; a start that hangs past this is a failure too.
    const exited = await Promise.race([proc.exited, Bun.sleep(60_000).then(() => null)]);
    if (exited === null) proc.kill("SIGKILL");
    expect(exited).toBe(78);
    const logged = await stderr;
    expect(logged).toContain('"code":"bus_unheard"');
    // Its last line, as the alert's runbook names it.
    expect(logged.trim().split("\n").at(-1)).toStartWith("bus_unheard: ");
    expect(readFileSync(join(REPO_ROOT, "deploy", "prometheus", "alerts.yml"), "utf8")).toContain('"bus_unheard"');
    expect(logged).toContain("transaction or statement mode");

    const direct = postgres(db.databaseUrl!, { max: 1, onnotice: () => {} });
    cleanups.push(() => direct.end({ timeout: 1 }));
    const [registered] = await direct<{ running: number; stopped: number }[]>`
      SELECT count(*) FILTER (WHERE stopped_at IS NULL)::int AS running, count(*) FILTER (WHERE stopped_at IS NOT NULL)::int AS stopped
      FROM broker_instances`;
    expect(registered).toEqual({ running: 0, stopped: 1 });
  });
});
