// Recipients with a socket on each of two instances, one of which stops
// (SIGSTOP: as killed, to the others, until it is reaped): which of their
// presences a send hands its message to while the stopped one's presences
// are still live.
import { TestBroker, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import { str } from "./messaging.ts";
import type { PairWithDatabase } from "./pair-database.ts";

/**
 * A short lease, renewed every 4 s: a stopped instance is behind the live
 * one within seconds, and its lease runs out 12 s after its last renewal.
 */
export const SHORT_INSTANCE_LEASE = { INSTANCE_LEASE_SECONDS: "12" };

export interface StoppedAndLive {
  /** Each recipient's peer on the live instance, in the order given. */
  onLive: TestPeer[];
  /**
   * Whether the stopped instance's lease still runs and its presences are
   * still live: a test that sent after the reap proved nothing.
   */
  stillLive(): Promise<boolean>;
  /** Continues the stopped instance and stops the live one. */
  undo(): Promise<void>;
}

const instanceIdOf = async (broker: TestBroker): Promise<string> =>
  str(((await (await fetch(`${broker.url}/health`)).json()) as { instanceId: unknown }).instanceId);

/**
 * Starts a third instance beside the pair (started with SHORT_INSTANCE_LEASE),
 * connects each recipient to pair.b and to it (half to b first, half last:
 * whatever order their presences are found in, b's come first for some),
 * then stops b and waits until the live instance's lease is ahead of b's.
 */
export async function recipientsOnStoppedAndLive(pair: PairWithDatabase, meshId: string, recipients: SetupMember[]): Promise<StoppedAndLive> {
  const live = await TestBroker.start(SHORT_INSTANCE_LEASE, { backend: pair.a.backend });
  const bPid = pair.b.process.pid;
  let stopped = false;
  const undo = async () => {
    if (stopped) process.kill(bPid, "SIGCONT");
    await live.dispose();
  };
  try {
    const connect = async (broker: TestBroker, member: SetupMember) => {
      const peer = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId });
      pair.peers.push(peer);
      return peer;
    };
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
    const stillLive = async () => {
      const [row] = await pair.sql<Array<{ live: boolean }>>`
        SELECT i.lease_expires_at > now() AND i.stopped_at IS NULL
               AND (SELECT count(*) FROM presences p WHERE p.instance_id = i.id AND p.disconnected_at IS NULL) = ${recipients.length} AS live
        FROM broker_instances i WHERE i.id = ${b}`;
      return row?.live === true;
    };
    return { onLive, stillLive, undo };
  } catch (error) {
    await undo();
    throw error;
  }
}
