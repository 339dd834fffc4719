// The Dockerfile, proven by replaying it (no image can be built here): its
// install step in an empty directory holding only what its COPY lines name,
// its CMD there as an unprivileged user against Postgres, its HEALTHCHECK,
// then its STOPSIGNAL: exit 0 within 10 s. And a Dockerfile that forgets a
// file the broker needs must fail the same replay.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  freePort,
  ownPostgresTestsRun,
  postgresBackend,
  REPO_ROOT,
  startPostgresCluster,
  tempDir,
  TEST_ADMIN_TOKEN,
  type PostgresCluster,
  type TestBackend,
} from "@switchboard/testkit";
import { DockerfileParser, type Copy } from "dockerfile-ast";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { buildImage, startContainer, type BuiltImage } from "./support/dockerfile-replay.ts";

const DOCKERFILE = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
const GIT_SHA = "abc1234";
// The contract's grace period: an orchestrator sends SIGKILL after 10 s.
const STOP_GRACE_MS = 10_000;

// The replay runs on DATABASE_URL, else on a Postgres server of its own; the
// backend plays no part in it, so CI, which runs the suite on each, replays once.
const haveServer = process.env.DATABASE_URL ? true : ownPostgresTestsRun();

let workRoot: string;
let cluster: PostgresCluster | undefined;
let backend: TestBackend;
// The install stage is the same in every build below: it runs once.
const stageCache = new Map<string, string>();

beforeAll(async () => {
  workRoot = tempDir("replay");
  // The unprivileged user must reach the stages under it.
  chmodSync(workRoot, 0o755);
  if (!haveServer) return;
  if (!process.env.DATABASE_URL) cluster = await startPostgresCluster();
  backend = await postgresBackend(process.env.DATABASE_URL ?? cluster!.url());
});
afterAll(async () => {
  await backend?.dispose();
  await cluster?.destroy();
  rmSync(workRoot, { recursive: true, force: true });
});

function build(dockerfile: string): Promise<BuiltImage> {
  const workDir = mkdtempSync(join(workRoot, "build-"));
  chmodSync(workDir, 0o755);
  return buildImage({ dockerfile, context: REPO_ROOT, workDir, buildArgs: { GIT_SHA }, stageCache });
}

const runtimeEnv = async () => ({
  DATABASE_URL: backend.databaseUrl!,
  ADMIN_TOKEN: TEST_ADMIN_TOKEN,
  // An orchestrator's settings; here: loopback and a free port.
  HOST: "127.0.0.1",
  BROKER_PORT: String(await freePort()),
});

/** The COPY lines of the final stage that take files from the build context, with the Dockerfile less each. */
function contextCopiesOfFinalStage(): { line: string; without: string }[] {
  const parsed = DockerfileParser.parse(DOCKERFILE);
  const finalFrom = parsed.getFROMs().at(-1)!.getRange().start.line;
  const lines = DOCKERFILE.split("\n");
  return parsed
    .getCOPYs()
    .filter((copy: Copy) => copy.getRange().start.line > finalFrom && copy.getFromFlag() === null)
    .map((copy) => {
      const { start, end } = copy.getRange();
      return { line: copy.toString(), without: lines.filter((_, i) => i < start.line || i > end.line).join("\n") };
    });
}

describe.skipIf(!haveServer)("Dockerfile replay", () => {
  test("installs, runs as an unprivileged user, passes its HEALTHCHECK and stops with 0 on its STOPSIGNAL", async () => {
    const image = await build(DOCKERFILE);
    expect(image.cmd).toEqual(["bun", "apps/broker/src/index.ts"]);
    expect(image.exposed).toEqual([7900]);
    expect(image.stopSignal).toBe("SIGTERM");
    // The database driver installed is the patched one: every line its patch (as package.json names it) adds is in it.
    const { patchedDependencies } = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
      patchedDependencies: Record<string, string>;
    };
    const [, patch] = Object.entries(patchedDependencies).find(([name]) => name.startsWith("postgres@")) ?? [];
    // Each file the patch changes ("+++ b/src/…"), with the lines it adds to it.
    const added: { file: string; line: string }[] = [];
    let file = "";
    for (const line of readFileSync(join(REPO_ROOT, patch ?? "the postgres patch is not in package.json"), "utf8").split("\n")) {
      if (line.startsWith("+++ b/")) file = line.slice("+++ b/".length);
      else if (line.startsWith("+") && line.trim() !== "+") added.push({ file, line: line.slice(1) });
    }
    const installed = join(image.final.root, image.final.workdir, "node_modules", "postgres");
    expect(new Set(added.map((a) => a.file))).toEqual(new Set(["src/connection.js", "src/index.js"]));
    expect(added.filter((a) => !readFileSync(join(installed, a.file), "utf8").includes(a.line))).toEqual([]);

    const env = await runtimeEnv();
    const container = startContainer(image, env);
    try {
      await container.healthy();
      const uid = readFileSync(`/proc/${container.proc.pid}/status`, "utf8").match(/^Uid:\s+(\d+)/m)?.[1];
      expect(Number(uid)).toBeGreaterThan(0);

      const base = `http://127.0.0.1:${env.BROKER_PORT}`;
      const health = (await (await fetch(`${base}/health`)).json()) as Record<string, unknown>;
      expect(health).toMatchObject({ status: "ok", db: "up", gitSha: GIT_SHA });
      expect((await fetch(`${base}/health/ready`)).status).toBe(200);
    } finally {
      const code = await container.stop(STOP_GRACE_MS);
      expect(code).toBe(0);
    }
    expect(container.output()).toContain('"msg":"shutdown complete"');
  });

  test("its HEALTHCHECK asks the address HOST names: a broker listening on 127.0.0.2 alone passes it", async () => {
    const container = startContainer(await build(DOCKERFILE), { ...(await runtimeEnv()), HOST: "127.0.0.2" });
    try {
      await container.healthy();
    } finally {
      expect(await container.stop(STOP_GRACE_MS)).toBe(0);
    }
  });

  test.each(contextCopiesOfFinalStage())("without `$line` the broker does not start", async ({ without }) => {
    const image = await build(without);
    const container = startContainer(image, await runtimeEnv());
    try {
      await expect(container.healthy()).rejects.toThrow(/^CMD exited with 1 before its HEALTHCHECK passed/);
      await container.proc.exited;
    } finally {
      await container.stop(STOP_GRACE_MS);
    }
  });
});
