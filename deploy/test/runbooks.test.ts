// What the alert rules' runbooks tell an operator, checked against a real
// broker rather than taken on trust: an operator paged at night acts on the
// runbook line alone.
import { describe, expect, test } from "bun:test";
import {
  parsePrometheusText,
  PeerError,
  RawUpgradeRefused,
  RawWebSocket,
  setupMesh,
  TestPeer,
  useTestBroker,
  waitUntil,
  type SetupMember,
  type TestBroker,
} from "@switchboard/testkit";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

interface Rule {
  alert?: string;
  annotations?: { runbook?: string };
}

const rules = (parse(readFileSync(join(import.meta.dir, "..", "prometheus", "alerts.yml"), "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);
const runbookOf = (alert: string) => rules.find((r) => r.alert === alert)?.annotations?.runbook ?? "";
/** The variables of `names` a runbook does not mention by their whole name. */
const unnamed = (runbook: string, names: string[]) => names.filter((name) => !new RegExp(`\\b${name}\\b`).test(runbook));

async function capacityRefusals(broker: TestBroker): Promise<number> {
  const families = parsePrometheusText(await (await fetch(`${broker.url}/metrics`)).text());
  return families.get("broker_connections_rejected_total")?.samples.find((s) => s.labels.reason === "capacity")?.value ?? Number.NaN;
}

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
        await waitUntil(
          () => broker.process.logs.filter((l) => l.msg === "ws hello refused" && l.code === "capacity").length === 2 || undefined,
          10_000,
          "two ws hello refused lines with code capacity",
        );
      } finally {
        await Promise.all(peers.map((p) => p.close()));
      }
      expect(unnamed(runbook, ["MAX_CONNECTIONS_PER_MESH", "MAX_CONNECTIONS_PER_MEMBER"])).toEqual([]);
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
