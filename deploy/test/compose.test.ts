// deploy/compose.yaml, read as compose reads it (YAML with merge keys), holds
// the deployment's invariants: broker settings the broker knows, Traefik's
// health check on a route that answers at the port the image exposes, the
// public routes and no more, no secret written into the file, Prometheus
// scraping every instance, Grafana given the dashboard that exists.
import { describe, expect, test } from "bun:test";
import { freePort, REPO_ROOT, spawnRaw, useTestBroker, waitUntil } from "@switchboard/testkit";
import { DockerfileParser } from "dockerfile-ast";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { configSchema, loadConfig } from "../../apps/broker/src/config.ts";

const DEPLOY = join(import.meta.dir, "..");

interface Service {
  build?: { context?: string; dockerfile?: string; args?: Record<string, string> };
  image?: string;
  environment?: Record<string, string>;
  labels?: string[];
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] };
  volumes?: string[];
  stop_grace_period?: string;
  profiles?: string[];
}

const compose = parse(readFileSync(join(DEPLOY, "compose.yaml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = Object.entries(compose.services);
const brokers = services.filter(([, s]) => s.build?.dockerfile === "Dockerfile");

const labelsOf = (service: Service) =>
  new Map(
    (service.labels ?? []).map((label) => {
      const at = label.indexOf("=");
      return [label.slice(0, at), label.slice(at + 1)] as const;
    }),
  );

const seconds = (duration: string) => {
  const m = duration.match(/^(\d+)(s|m)$/);
  if (!m) throw new Error(`unexpected duration ${duration}`);
  return Number(m[1]) * (m[2] === "m" ? 60 : 1);
};

// A variable reference with no literal fallback: ${NAME}, ${NAME:?message} or ${NAME:-} (empty).
const REFERENCE = /^\$\{[A-Z][A-Z0-9_]*(?::\?[^}]*|:-)?\}$/;
const SECRET_NAME = /PASSWORD|TOKEN|SECRET|DSN|KEY/;

describe("deploy/compose.yaml", () => {
  // Two as shipped; docs/deploy.md's Scaling adds more the same way (broker-3: *broker).
  test("at least two broker instances from the Dockerfile at the repository root, after a healthy Postgres", () => {
    expect(brokers.length).toBeGreaterThanOrEqual(2);
    expect(brokers.map(([name]) => name)).toEqual(brokers.map((_, i) => `broker-${i + 1}`));
    for (const [, broker] of brokers) {
      expect(existsSync(join(DEPLOY, broker.build!.context!, broker.build!.dockerfile!))).toBe(true);
      expect(broker.build?.args?.GIT_SHA).toMatch(REFERENCE);
      expect(broker.depends_on?.postgres?.condition).toBe("service_healthy");
      expect(seconds(broker.stop_grace_period ?? "10s")).toBeGreaterThanOrEqual(10);
    }
    const postgres = compose.services.postgres!;
    expect(postgres.image).toMatch(/^postgres:15\b/);
    expect(postgres.healthcheck?.test?.join(" ")).toContain("pg_isready");
    const dataVolume = postgres.volumes?.find((v) => v.endsWith(":/var/lib/postgresql/data"));
    expect(compose.volumes).toHaveProperty(dataVolume!.split(":")[0]!);
  });

  test("every variable set on a broker is one of its configuration", () => {
    const known = new Set(Object.keys(configSchema.shape));
    for (const [, broker] of brokers) {
      expect(Object.keys(broker.environment ?? {}).filter((name) => !known.has(name))).toEqual([]);
    }
  });

  test("every variable docs/deploy.md names is the broker's, the compose file's or a build argument of the Dockerfile", () => {
    const text = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");
    const known = new Set([
      ...Object.keys(configSchema.shape),
      ...[...text("deploy/compose.yaml").matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!),
      ...[...text("Dockerfile").matchAll(/^ARG ([A-Z][A-Z0-9_]*)/gm)].map((m) => m[1]!),
      // Coolify's, which docs/deploy.md says to pass as GIT_SHA.
      "SOURCE_COMMIT",
    ]);
    const named = new Set([...text("docs/deploy.md").matchAll(/\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b/g)].map((m) => m[0]));
    expect(named.size).toBeGreaterThan(20);
    expect([...named].filter((name) => !known.has(name))).toEqual([]);
  });

  test("behind Traefik each broker reads the client's address from X-Forwarded-For: TRUSTED_PROXIES covers Docker's networks", () => {
    for (const [, broker] of brokers) {
      const value = broker.environment?.TRUSTED_PROXIES ?? "";
      const fallback = value.match(/^\$\{TRUSTED_PROXIES:-(.+)\}$/)?.[1];
      expect(fallback).toBeDefined();
      expect(loadConfig({ TRUSTED_PROXIES: fallback }).TRUSTED_PROXIES).toBeDefined();
      for (const net of ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]) expect(fallback!.split(",")).toContain(net);
    }
  });

  test("no secret has a literal value: only references to the environment", () => {
    for (const [name, service] of services) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (SECRET_NAME.test(key)) expect({ service: name, key, value: REFERENCE.test(value) }).toEqual({ service: name, key, value: true });
      }
      const url = service.environment?.DATABASE_URL;
      if (url !== undefined) expect(url).toMatch(/^postgres:\/\/\w+:\$\{[A-Z_]+(:\?[^}]*)?\}@/);
    }
  });

  test("Traefik routes the peer-facing paths with TLS, and neither /metrics nor sticky sessions", () => {
    for (const [, broker] of brokers) {
      const labels = labelsOf(broker);
      expect(labels.get("traefik.enable")).toBe("true");
      const rule = labels.get("traefik.http.routers.switchboard.rule") ?? "";
      for (const path of ["/ws", "/hook", "/v1", "/health", "/dashboard"]) expect(rule).toContain(`PathPrefix(\`${path}\`)`);
      expect(rule).not.toContain("/metrics");
      expect(rule).toMatch(/^Host\(`\$\{SWITCHBOARD_HOST(:\?[^}]*)?\}`\) && /);
      expect(labels.get("traefik.http.routers.switchboard.tls.certresolver")).toBeTruthy();
      expect([...labels.keys()].some((key) => key.includes("sticky"))).toBe(false);
    }
    for (const [, broker] of brokers) expect(labelsOf(broker)).toEqual(labelsOf(brokers[0]![1]));
  });

  describe("Traefik's health check", () => {
    const broker = useTestBroker();

    test("asks a broker route that answers 200, at the port the image exposes and the broker listens on", async () => {
      const labels = labelsOf(brokers[0]![1]);
      const port = Number(labels.get("traefik.http.services.switchboard.loadbalancer.server.port"));
      const exposed = DockerfileParser.parse(readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8"))
        .getInstructions()
        .filter((i) => i.getKeyword() === "EXPOSE")
        .flatMap((i) => i.getArguments().map((a) => Number(a.getValue())));
      expect(exposed).toEqual([port]);
      const listens = Number(brokers[0]![1].environment?.BROKER_PORT ?? configSchema.shape.BROKER_PORT.parse(undefined));
      expect(listens).toBe(port);

      const path = labels.get("traefik.http.services.switchboard.loadbalancer.healthcheck.path")!;
      expect(path).toBe("/health/ready");
      expect((await fetch(`${broker.url}${path}`)).status).toBe(200);
    });
  });

  test("the brokers' health check passes while the broker answers, its database away (503) or not, and fails when nothing answers", async () => {
    const [command, ...args] = brokers[0]![1].healthcheck?.test ?? [];
    expect(command).toBe("CMD");
    expect(brokers.map(([, b]) => b.healthcheck)).toEqual(brokers.map(() => brokers[0]![1].healthcheck));
    const check = async (port: number) => {
      const run = Bun.spawn(args, { env: { ...process.env, BROKER_PORT: String(port) }, stdout: "ignore", stderr: "ignore" });
      return run.exited;
    };
    const port = await freePort();
    expect(await check(port)).toBe(1);
    // Waiting for a database that is not there: its port is open, /health says 503.
    const broker = spawnRaw({ DATABASE_URL: "postgres://switchboard@127.0.0.1:1/none", HOST: "127.0.0.1", BROKER_PORT: String(port) });
    try {
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0)) === 503 || undefined, 20_000, "/health answering 503");
      expect(await check(port)).toBe(0);
    } finally {
      broker.kill("SIGKILL");
      await broker.exited;
    }
  });

  test("the brokers' health check asks the address HOST names: a broker listening on 127.0.0.2 alone passes it", async () => {
    const [, ...args] = brokers[0]![1].healthcheck?.test ?? [];
    const port = await freePort();
    const broker = spawnRaw({ DATABASE_URL: "postgres://switchboard@127.0.0.1:1/none", HOST: "127.0.0.2", BROKER_PORT: String(port) });
    try {
      await waitUntil(async () => (await fetch(`http://127.0.0.2:${port}/health`).then((r) => r.status, () => 0)) === 503 || undefined, 20_000, "/health answering 503");
      const run = Bun.spawn(args, { env: { ...process.env, HOST: "127.0.0.2", BROKER_PORT: String(port) }, stdout: "ignore", stderr: "ignore" });
      expect(await run.exited).toBe(0);
    } finally {
      broker.kill("SIGKILL");
      await broker.exited;
    }
  });

  test("Prometheus scrapes every broker instance at its port, and only those", () => {
    const prometheus = compose.services.prometheus!;
    expect(prometheus.volumes).toContain("./prometheus:/etc/prometheus:ro");
    const config = parse(readFileSync(join(DEPLOY, "prometheus", "prometheus.yml"), "utf8")) as {
      rule_files: string[];
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    const job = config.scrape_configs.find((c) => c.job_name === "switchboard")!;
    const targets = job.static_configs.flatMap((c) => c.targets).sort();
    const port = labelsOf(brokers[0]![1]).get("traefik.http.services.switchboard.loadbalancer.server.port");
    expect(targets).toEqual(brokers.map(([name]) => `${name}:${port}`).sort());
    for (const file of config.rule_files) expect(existsSync(join(DEPLOY, "prometheus", file))).toBe(true);
  });

  test("Grafana gets the provisioning and the dashboard that exist, where its provider looks", () => {
    const grafana = compose.services.grafana!;
    const binds = (grafana.volumes ?? []).filter((v) => v.startsWith("./")).map((v) => v.split(":"));
    for (const [source] of binds) expect(existsSync(join(DEPLOY, source!))).toBe(true);
    const provider = parse(readFileSync(join(DEPLOY, "grafana/provisioning/dashboards/switchboard.yaml"), "utf8")) as {
      providers: { options: { path: string } }[];
    };
    const dashboard = binds.find(([source]) => source === "./grafana/switchboard.json");
    expect(dashboard?.[1]).toBe(`${provider.providers[0]!.options.path}/switchboard.json`);
    expect(binds.some(([source, target]) => source === "./grafana/provisioning" && target === "/etc/grafana/provisioning")).toBe(true);
  });
});
