// Recipients with a socket on each of two instances, one of which stops
// (SIGSTOP: as killed, to the others, until it is reaped): which of their
// presences a send hands its message to while the stopped one's presences
// are still live.
import { setupMesh, TestBroker, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import { str } from "./messaging.ts";
import type { PairWithDatabase } from "./pair-database.ts";

/**
 * A short lease, renewed every 4 s: a stopped instance is behind the live
 * one within seconds, and its lease runs out 12 s after its last renewal.
 */
export const SHORT_INSTANCE_LEASE = { INSTANCE_LEASE_SECONDS: "12" };

const instanceIdOf = async (broker: TestBroker): Promise<string> =>
  str(((await (await fetch(`${broker.url}/health`)).json()) as { instanceId: unknown }).instanceId);

/**
 * A sender on pair.a and four recipients, each with a presence on pair.b and
 * one on a third instance started beside them (half connected to b first,
 * half last: whatever order their presences are found in, b's come first
 * for some). b is stopped and, once the live instance's lease is ahead of
 * b's, `each` runs for every recipient, with its peer on the live instance.
 * It fails if b was reaped meanwhile (its presences ended, nothing was
 * tested). The pair is started with SHORT_INSTANCE_LEASE.
 */
export async function whileOneIsStopped(
  pair: PairWithDatabase,
  each: (sender: TestPeer, recipient: SetupMember, onLive: TestPeer) => Promise<void>,
): Promise<void> {
  const { mesh, members } = await setupMesh(pair.a.admin, { members: ["sender", "r1", "r2", "r3", "r4"] });
  const [senderM, ...recipients] = members as [SetupMember, ...SetupMember[]];
  const connect = async (broker: TestBroker, member: SetupMember) => {
    const peer = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId: mesh.id });
    pair.peers.push(peer);
    return peer;
  };
  const sender = await connect(pair.a, senderM);
  const live = await TestBroker.start(SHORT_INSTANCE_LEASE, { backend: pair.a.backend });
  const bPid = pair.b.process.pid;
  let stopped = false;
  try {
    const onLive: TestPeer[] = [];
    for (const [i, member] of recipients.entries()) {
      if (i % 2 === 0) await connect(pair.b, member);
      onLive.push(await connect(live, member));
      if (i % 2 === 1) await connect(pair.b, member);
    }
    const [b, liveId] = [await instanceIdOf(pair.b), await instanceIdOf(live)];
    process.kill(bPid, "SIGSTOP");
    stopped = true;
    // Until it is reaped its presences stay live; the live instance renews meanwhile.
    await waitUntil(
      async () => {
        const rows = await pair.sql<Array<{ id: string }>>`
          SELECT id FROM broker_instances WHERE id IN (${b}, ${liveId}) ORDER BY lease_expires_at DESC LIMIT 1`;
        return rows[0]?.id === liveId || undefined;
      },
      20_000,
      "the live instance's lease ahead of the stopped one's",
    );
    for (const [i, member] of recipients.entries()) await each(sender, member, onLive[i]!);
    const [row] = await pair.sql<Array<{ live: boolean }>>`
      SELECT i.lease_expires_at > now() AND i.stopped_at IS NULL
             AND (SELECT count(*) FROM presences p WHERE p.instance_id = i.id AND p.disconnected_at IS NULL) = ${recipients.length} AS live
      FROM broker_instances i WHERE i.id = ${b}`;
    if (row?.live !== true) throw new Error("the stopped instance was reaped before the sends were checked: nothing was tested");
  } finally {
    if (stopped) process.kill(bPid, "SIGCONT");
    await live.dispose();
  }
}
