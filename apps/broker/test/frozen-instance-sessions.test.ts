// An instance frozen (SIGSTOP, a paused VM or container) past its lease is
// reaped by the others, and its database sessions must go with it: its
// listening connection, no longer read, holds back Postgres's notification
// queue until every NOTIFY fails, and a session of it in the middle of a
// statement keeps its locks. Here B is frozen past its lease; after A reaps
// it, no backend of B's process remains. Awake, B's new sessions carry its
// name, and it serves again.
import { describe, expect, test } from "bun:test";
import { applicationNameOf } from "@switchboard/db";
import { backendKind, setupMesh, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { usePairWithDatabase } from "./support/pair-database.ts";

const INSTANCE_LEASE_SECONDS = 5;

/** The local TCP ports of a process's sockets (Linux: its fds and /proc/<pid>/net). */
function localPortsOf(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const target = (() => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return ""; // closed meanwhile
      }
    })();
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (local && inodes.has(fields[9] ?? "")) ports.push(Number.parseInt(local.split(":").at(-1)!, 16));
    }
  }
  return ports;
}

describe.skipIf(backendKind !== "postgres")("an instance frozen past its lease (needs DATABASE_URL)", () => {
  const pair = usePairWithDatabase({ INSTANCE_LEASE_SECONDS: String(INSTANCE_LEASE_SECONDS) });
  const { peers } = pair;

  /** Backends whose client is a socket of the process `pid`. */
  const backendsOf = async (pid: number) => {
    const ports = localPortsOf(pid);
    return await pair.sql<{ pid: number; application_name: string }[]>`
      SELECT pid, application_name FROM pg_stat_activity
      WHERE client_port = ANY(${ports}::int[]) AND datname = current_database()`;
  };

  test("its database sessions are ended when it is reaped", async () => {
    const { mesh, members } = await setupMesh(pair.a.admin, { members: ["frozen", "watcher", "again"] });
    const [frozenM, watcherM, againM] = members as [SetupMember, SetupMember, SetupMember];
    const watcher = await TestPeer.connect(pair.a.wsUrl, { identity: watcherM.identity, meshId: mesh.id });
    peers.push(watcher, await TestPeer.connect(pair.b.wsUrl, { identity: frozenM.identity, meshId: mesh.id }));
    const bPid = pair.b.process.pid;
    const { instanceId } = (await (await fetch(`${pair.b.url}/health`)).json()) as { instanceId: string };
    // Its pools and its listener are open.
    expect((await backendsOf(bPid)).length).toBeGreaterThan(1);

    process.kill(bPid, "SIGSTOP");
    try {
      const sessions = async () => {
        const reply = await watcher.request({ type: "list_peers" });
        return (reply.peers as Array<{ presences: unknown[] }>).flatMap((p) => p.presences).length;
      };
      await waitUntil(async () => (await sessions()) === 1, 30_000, "B's presence reaped");
      await waitUntil(async () => (await backendsOf(bPid)).length === 0, 30_000, "no backend of B left after its reap");
    } finally {
      process.kill(bPid, "SIGCONT");
    }

    // Awake, B finds its lease lost and its sessions ended; it opens new ones, named for it, and serves.
    const again = async () => {
      const peer = await TestPeer.connect(pair.b.wsUrl, { identity: againM.identity, meshId: mesh.id }).catch(() => null);
      if (peer) peers.push(peer);
      return peer !== null;
    };
    await waitUntil(again, 30_000, "a hello admitted by B once it wakes");
    const names = new Set((await backendsOf(bPid)).map((b) => b.application_name));
    expect([...names]).toEqual([applicationNameOf(instanceId)]);
  }, 120_000);
});
