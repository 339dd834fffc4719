// What the alert rules' runbooks tell an operator, checked against a real
// broker rather than taken on trust: an operator paged at night acts on the
// runbook line alone.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  backendKind,
  freePort,
  freshBackend,
  makeDatabaseReadOnly,
  ownPostgresTestsRun,
  parsePrometheusText,
  PeerError,
  postgresBackend,
  RawUpgradeRefused,
  RawWebSocket,
  refuseMessagesForWantOfSpace,
  setupMesh,
  spawnRaw,
  startPostgresCluster,
  startPostgresProxy,
  TestBroker,
  tempDir,
  TestPeer,
  useTestBroker,
  waitUntil,
  within,
  type PostgresCluster,
  type PostgresProxy,
  type SetupMember,
  type TestBackend,
} from "@switchboard/testkit";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { connect, lockDataDir, migrate } from "../../packages/db/src/index.ts";

interface Rule {
  alert?: string;
  annotations?: { runbook?: string };
}

const DEPLOY = join(import.meta.dir, "..");
const rules = (parse(readFileSync(join(DEPLOY, "prometheus", "alerts.yml"), "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);
const runbookOf = (alert: string) => rules.find((r) => r.alert === alert)?.annotations?.runbook ?? "";
/** The variables of `names` a runbook does not mention by their whole name. */
const unnamed = (runbook: string, names: string[]) => names.filter((name) => !new RegExp(`\\b${name}\\b`).test(runbook));

async function scrape(broker: TestBroker) {
  return parsePrometheusText(await (await fetch(`${broker.url}/metrics`)).text());
}

async function capacityRefusals(broker: TestBroker): Promise<number> {
  return (await scrape(broker)).get("broker_connections_rejected_total")?.samples.find((s) => s.labels.reason === "capacity")?.value ?? Number.NaN;
}

describe("SwitchboardInstanceDown", () => {
  const runbook = runbookOf("SwitchboardInstanceDown");

  /** A broker start that fails: its exit status and the last line it wrote. */
  async function failedStart(env: Record<string, string>): Promise<{ code: number; last: string }> {
    const proc = spawnRaw(env);
    // A start that is not refused would serve for good: it is given a minute, then killed.
    const [code, stderr] = await within(Promise.all([proc.exited, new Response(proc.stderr).text()]), 60_000, "the refused start's exit").finally(
      () => proc.kill("SIGKILL"),
    );
    return { code, last: stderr.trim().split("\n").at(-1) ?? "" };
  }

  test("each start the broker refuses exits with a status and a last line the runbook names", async () => {
    const dir = tempDir("refused-starts");
    const held = join(dir, "held");
    const releaseLock = lockDataDir(held);
    const taken = Bun.listen({ hostname: "127.0.0.1", port: await freePort(), socket: { data() {} } });
    try {
      const starts: { cause: string; env: Record<string, string>; code: number; line: string }[] = [
        { cause: "a bad setting", env: { MAX_MESSAGE_BYTES: "lots" }, code: 78, line: "invalid environment variable" },
        { cause: "a port in use", env: { BROKER_PORT: String(taken.port) }, code: 1, line: "cannot listen on" },
        { cause: "a DATA_DIR another broker holds", env: { DATA_DIR: held }, code: 75, line: "is in use by another broker" },
      ];
      for (const start of starts) {
        const { code, last } = await failedStart({ HOST: "127.0.0.1", DATA_DIR: join(dir, "own"), ...start.env });
        expect({ cause: start.cause, code, last: last.includes(start.line) }).toEqual({ cause: start.cause, code: start.code, last: true });
        expect({ cause: start.cause, named: runbook.includes(start.line), status: new RegExp(`\\b${start.code}\\b`).test(runbook) }).toEqual({
          cause: start.cause,
          named: true,
          status: true,
        });
      }
    } finally {
      taken.stop(true);
      releaseLock();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Its database is a server of the test's own behind the test's proxy: the
// server is stopped (it refuses connections), or the proxy stalls as a
// network partition does (connections stay open, nothing comes back).
describe.skipIf(!ownPostgresTestsRun())("SwitchboardDatabaseDown", () => {
  const runbook = runbookOf("SwitchboardDatabaseDown");
  let cluster: PostgresCluster;
  let backend: TestBackend;
  let proxy: PostgresProxy;
  let broker: TestBroker;
  let tokens: { hook: string; api: string };
  let mesh: string;
  let a: SetupMember;
  let b: SetupMember;

  beforeAll(async () => {
    cluster = await startPostgresCluster();
    backend = await postgresBackend(cluster.url());
    const server = new URL(backend.databaseUrl!);
    proxy = await startPostgresProxy({ host: server.hostname, port: Number(server.port) });
    broker = await TestBroker.start({ DATABASE_URL: proxy.url(backend.databaseUrl!) }, { backend });
    const setup = await setupMesh(broker.admin, { members: 2 });
    mesh = setup.mesh.id;
    [a, b] = setup.members as [SetupMember, SetupMember];
    tokens = { hook: await broker.admin.createHookToken(mesh, a.id), api: await broker.admin.createApiToken(mesh, a.id) };
  });
  afterAll(async () => {
    await broker?.dispose();
    await proxy?.close();
    await backend?.dispose();
    await cluster?.destroy();
  });

  const healthy = (value: number, timeoutMs: number) =>
    waitUntil(async () => (await scrape(broker)).get("broker_db_healthy")?.samples[0]?.value === value || undefined, timeoutMs, `broker_db_healthy ${value}`);

  /** The HTTP status of a hook, an HTTP send and an admin request, sent together. */
  async function routeStatuses(): Promise<{ hook: number; message: number; admin: number }> {
    const post = (path: string, token: string, body: object) =>
      fetch(`${broker.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    const [hook, message, admin] = await Promise.all([
      post("/hook/set-status", tokens.hook, { cwd: "/tmp", status: "idle" }),
      post("/v1/messages", tokens.api, { targetSpec: b.pubkey, nonce: "n", ciphertext: "c" }),
      fetch(`${broker.url}/v1/meshes`, { headers: { authorization: `Bearer ${broker.adminToken}` } }),
    ]);
    return { hook: hook.status, message: message.status, admin: admin.status };
  }

  test("a partition: HTTP sends made on silent connections get 500 internal (they may be stored), hooks and admin 503, as the runbook says", async () => {
    expect(runbook).toContain("an HTTP send already under way gets 500 internal after 8 s, and so does every HTTP send that comes while the connections stay silent");
    expect(runbook).toContain("hooks and admin requests get 503 after those 8 s");
    // The pool's connections are open and known good: the requests below go out on them.
    expect(await routeStatuses()).toEqual({ hook: 200, message: 201, admin: 200 });
    proxy.stall();
    try {
      expect(await routeStatuses()).toEqual({ hook: 503, message: 500, admin: 503 });
    } finally {
      proxy.resume();
    }
    await healthy(1, 30_000);
  });

  test("a stopped server: a socket send is answered error internal, a hello closed with 1011, hooks, messages and admin answer 503; then it recovers by itself", async () => {
    expect(runbook).toContain("socket sends are answered error internal, hellos are closed with 1011, and the HTTP routes (hooks, messages, admin) answer 503");
    const peer = await TestPeer.connect(broker.wsUrl, { identity: a.identity, meshId: mesh });
    try {
      await cluster.stop();
      // What the alert reads: the gauge at 0, on a scrape that still answers.
      await healthy(0, 15_000);
      const send = await peer.request({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: "c", id: "while-down" });
      expect({ type: send.type, code: send.code }).toEqual({ type: "error", code: "internal" });
      const hello = await TestPeer.connect(broker.wsUrl, { identity: b.identity, meshId: mesh }).then(
        () => null,
        (e: unknown) => (e instanceof PeerError ? { code: e.code, closeCode: e.closeCode } : e),
      );
      expect(hello).toEqual({ code: "internal", closeCode: 1011 });
      expect(await routeStatuses()).toEqual({ hook: 503, message: 503, admin: 503 });

      await cluster.start();
      await healthy(1, 20_000);
      // A pooled connection that met the restart may fail one more send: the same id is sent again, as a client would.
      await waitUntil(
        async () => (await peer.request({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: "c", id: "while-down" })).type === "ack" || undefined,
        20_000,
        "the send acknowledged once the database is back",
      );
    } finally {
      await peer.close();
    }
  });
});

describe.skipIf(backendKind !== "postgres")("SwitchboardDatabaseFull (needs DATABASE_URL: a trigger refuses as a full disk would)", () => {
  const runbook = runbookOf("SwitchboardDatabaseFull");
  const broker = useTestBroker();

  test("what the alert reads, and what a send, /health and /health/ready say meanwhile, are what the runbook says", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const peer = await TestPeer.connect(broker.wsUrl, { identity: a.identity, meshId: mesh.id });
    const makeRoom = await refuseMessagesForWantOfSpace(broker.backend.databaseUrl!);
    try {
      const send = await peer.request({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: "c", id: "no-room" });
      expect({ type: send.type, code: send.code }).toEqual({ type: "error", code: "internal" });
      expect(runbook).toContain(String(send.message).replace("; send it again with the same id", ""));
      expect((await scrape(broker)).get("broker_db_full")?.samples[0]?.value).toBe(1);
      const health = (await (await fetch(`${broker.url}/health`)).json()) as { db: string };
      const ready = (await (await fetch(`${broker.url}/health/ready`)).json()) as { status: string };
      expect(runbook).toContain(`/health answers 503 with "db":"${health.db}" and /health/ready says ${ready.status}`);
      expect(unnamed(runbook, ["db full", "db writes again"])).toEqual([]);
    } finally {
      await makeRoom();
      await peer.close();
    }
  });
});

describe.skipIf(backendKind !== "postgres")("SwitchboardDatabaseReadOnly (needs DATABASE_URL: default_transaction_read_only on the database)", () => {
  const runbook = runbookOf("SwitchboardDatabaseReadOnly");
  const broker = useTestBroker();

  test("what the alert reads, and what a send, /health and /health/ready say meanwhile, are what the runbook says", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const peer = await TestPeer.connect(broker.wsUrl, { identity: a.identity, meshId: mesh.id });
    const makeWritable = await makeDatabaseReadOnly(broker.backend.databaseUrl!);
    try {
      // The first sends may meet a connection that was ended: a loss, not a refusal.
      const send = await waitUntil(
        async () => {
          const reply = await peer.request({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: "c", id: crypto.randomUUID() });
          return reply.type === "error" && String(reply.message).startsWith("the database is read-only") ? reply : undefined;
        },
        20_000,
        "a send refused as read-only",
      );
      expect(send.code).toBe("internal");
      expect(runbook).toContain(String(send.message).replace("; send it again with the same id", ""));
      await waitUntil(async () => (await scrape(broker)).get("broker_db_read_only")?.samples[0]?.value === 1, 20_000, "broker_db_read_only 1");
      // Its connections were ended to take the setting: a ping on one of them
      // fails, and /health says down until the next ping answers.
      const health = await waitUntil(
        async () => {
          const body = (await (await fetch(`${broker.url}/health`)).json()) as { db: string };
          return body.db === "down" ? undefined : body;
        },
        20_000,
        "/health past the ended connections",
      );
      const ready = (await (await fetch(`${broker.url}/health/ready`)).json()) as { status: string };
      expect(runbook).toContain(`/health answers 503 with "db":"${health.db}" and /health/ready says ${ready.status}`);
      expect(unnamed(runbook, ["db read-only", "db writable"])).toEqual([]);
      expect(broker.process.logs.some((l) => l.msg === "db read-only")).toBe(true);
    } finally {
      await makeWritable();
    }
    await waitUntil(() => broker.process.logs.some((l) => l.msg === "db writable"), 20_000, "db writable in the log");
    await peer.close();
  });
});

describe("SwitchboardCapacityRejections", () => {
  const runbook = runbookOf("SwitchboardCapacityRejections");

  describe("a hello over a live-presence limit", () => {
    const broker = useTestBroker({ MAX_CONNECTIONS_PER_MESH: "2", MAX_CONNECTIONS_PER_MEMBER: "1" });

    test("a full mesh and a member at its share are both counted as capacity, logged as ws hello refused, and both limits are in the runbook", async () => {
      const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
      const [a, b, c] = members as [SetupMember, SetupMember, SetupMember];
      const peers: TestPeer[] = [];
      const refusal = async (member: SetupMember) => {
        const before = await capacityRefusals(broker);
        const error = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId: mesh.id }).then(
          (peer) => {
            peers.push(peer);
            return null;
          },
          (e: unknown) => e,
        );
        if (!(error instanceof PeerError)) throw new Error(`the hello was not refused: ${String(error)}`);
        return { code: error.code, closeCode: error.closeCode, counted: (await capacityRefusals(broker)) - before };
      };
      try {
        peers.push(await TestPeer.connect(broker.wsUrl, { identity: a.identity, meshId: mesh.id }));
        // A second session of a member at MAX_CONNECTIONS_PER_MEMBER.
        expect(await refusal(a)).toEqual({ code: "capacity", closeCode: 1008, counted: 1 });
        peers.push(await TestPeer.connect(broker.wsUrl, { identity: b.identity, meshId: mesh.id }));
        // A new member in a mesh at MAX_CONNECTIONS_PER_MESH.
        expect(await refusal(c)).toEqual({ code: "capacity", closeCode: 1008, counted: 1 });
        const lines = await waitUntil(
          () => {
            const refused = broker.process.logs.filter((l) => l.msg === "ws hello refused" && l.code === "capacity");
            return refused.length === 2 ? refused : undefined;
          },
          10_000,
          "two ws hello refused lines with code capacity",
        );
        // Each names the mesh and the key, and which limit it met: what the operator looks for next.
        expect(lines.map((l) => ({ meshId: l.meshId, pubkey: l.pubkey, limit: /member|mesh/.exec(String(l.detail))?.[0] }))).toEqual([
          { meshId: mesh.id, pubkey: a.pubkey, limit: "member" },
          { meshId: mesh.id, pubkey: c.pubkey, limit: "mesh" },
        ]);
      } finally {
        await Promise.all(peers.map((p) => p.close()));
      }
      expect(unnamed(runbook, ["MAX_CONNECTIONS_PER_MESH", "MAX_CONNECTIONS_PER_MEMBER", "meshId", "pubkey"])).toEqual([]);
    });
  });

  describe("a member's hellos past their rate", () => {
    const broker = useTestBroker({ HELLO_RATE_LIMIT_PER_MIN: "2" });

    test("a member reconnecting in a loop is counted as capacity, logged with its key, and the limit is in the runbook", async () => {
      const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
      const [a] = members as [SetupMember];
      for (let i = 0; i < 2; i++) await (await TestPeer.connect(broker.wsUrl, { identity: a.identity, meshId: mesh.id })).close();
      const before = await capacityRefusals(broker);
      const error = await TestPeer.connect(broker.wsUrl, { identity: a.identity, meshId: mesh.id }).then(
        async (peer) => {
          await peer.close();
          return null;
        },
        (e: unknown) => e,
      );
      if (!(error instanceof PeerError)) throw new Error(`the third hello was not refused: ${String(error)}`);
      expect({ code: error.code, counted: (await capacityRefusals(broker)) - before }).toEqual({ code: "capacity", counted: 1 });
      const line = await waitUntil(
        () => broker.process.logs.find((l) => l.msg === "ws hello refused" && l.code === "capacity"),
        10_000,
        "a ws hello refused line with code capacity",
      );
      expect({ meshId: line.meshId, pubkey: line.pubkey, rate: /hellos in a minute/.test(String(line.detail)) }).toEqual({
        meshId: mesh.id,
        pubkey: a.pubkey,
        rate: true,
      });
      expect(unnamed(runbook, ["HELLO_RATE_LIMIT_PER_MIN"])).toEqual([]);
    });
  });

  describe("sockets waiting for their hello", () => {
    // Each client's address comes from X-Forwarded-For, as behind Traefik.
    const broker = useTestBroker({ MAX_PENDING_HELLOS: "2", MAX_PENDING_HELLOS_PER_ADDRESS: "1", TRUSTED_PROXIES: "127.0.0.1" });

    test("past either limit the upgrade gets 503 and is counted as capacity, and both limits are in the runbook", async () => {
      const open: RawWebSocket[] = [];
      const upgrade = async (address: string) => {
        const before = await capacityRefusals(broker);
        const status = await RawWebSocket.open(broker.wsUrl, { "x-forwarded-for": address }).then(
          (ws) => {
            open.push(ws);
            return 101;
          },
          (e: unknown) => {
            if (e instanceof RawUpgradeRefused) return e.status;
            throw e;
          },
        );
        return { status, counted: (await capacityRefusals(broker)) - before };
      };
      try {
        expect(await upgrade("198.51.100.1")).toEqual({ status: 101, counted: 0 });
        // MAX_PENDING_HELLOS_PER_ADDRESS.
        expect(await upgrade("198.51.100.1")).toEqual({ status: 503, counted: 1 });
        expect(await upgrade("198.51.100.2")).toEqual({ status: 101, counted: 0 });
        // MAX_PENDING_HELLOS.
        expect(await upgrade("198.51.100.3")).toEqual({ status: 503, counted: 1 });
      } finally {
        for (const ws of open) ws.destroy();
      }
      expect(unnamed(runbook, ["MAX_PENDING_HELLOS", "MAX_PENDING_HELLOS_PER_ADDRESS"])).toEqual([]);
    });
  });
});

/** Each "(SELECT …)" a text holds, its parentheses balanced. */
function parenthesizedSelects(text: string): string[] {
  const found: string[] = [];
  for (let at = text.indexOf("(SELECT "); at !== -1; at = text.indexOf("(SELECT ", at + 1)) {
    let depth = 0;
    for (let i = at; i < text.length; i++) {
      depth += text[i] === "(" ? 1 : text[i] === ")" ? -1 : 0;
      if (depth === 0) {
        found.push(text.slice(at + 1, i));
        break;
      }
    }
  }
  return found;
}

describe("the SQL an operator is told to run", () => {
  const deployMd = readFileSync(join(DEPLOY, "..", "docs", "deploy.md"), "utf8");
  const statements = [
    ...rules.flatMap((r) => parenthesizedSelects(r.annotations?.runbook ?? "")),
    ...[...deployMd.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim()),
  ];

  test("every statement in the runbooks and docs/deploy.md is planned on a migrated database: its tables, columns and states exist", async () => {
    expect(statements.length).toBeGreaterThanOrEqual(4);
    const backend = await freshBackend();
    const db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
    try {
      await migrate(db);
      const failed: string[] = [];
      for (const statement of statements) {
        // A runbook's placeholder for an id the operator fills in.
        const runnable = statement.replace(/'<\w+>'/g, `'${crypto.randomUUID()}'`);
        // Planned, not run: the read-only runbook's statement ends every
        // broker's sessions, every other test's on a shared server among them.
        await db.rows({ sql: `EXPLAIN ${runnable}`, params: [] }).catch((error: unknown) => failed.push(`${statement}: ${String(error)}`));
      }
      expect(failed).toEqual([]);
      // A state that does not exist fails no query: each is checked against the table's constraint.
      const [check] = await db.rows<{ def: string }>({
        sql: "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = 'deliveries_state_check'",
        params: [],
      });
      const states = new Set([...(check?.def ?? "").matchAll(/'(\w+)'/g)].map((m) => m[1]!));
      const named = statements.flatMap((st) => [...st.matchAll(/\bstate\s*(?:=|IN)\s*\(?((?:\s*'\w+'\s*,?)+)/g)].flatMap((m) => [...m[1]!.matchAll(/'(\w+)'/g)].map((q) => q[1]!)));
      expect(named.length).toBeGreaterThan(0);
      expect(named.filter((state) => !states.has(state))).toEqual([]);
    } finally {
      await db.close();
      await backend.dispose();
    }
  });
});
