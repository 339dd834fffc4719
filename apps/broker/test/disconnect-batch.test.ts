// Sockets that close together end in few transactions (presence-lifecycle.ts):
// one transaction per end queued hundreds of them on the pool when an
// instance's sessions all went at once, and every statement of the instance
// waited behind them. Rows written by one transaction share its xmin, so the
// distinct xmins of the ended rows count the transactions that ended them.
import { describe, expect, test } from "bun:test";
import { backendKind, setupMesh, useTestBroker, waitUntil } from "@switchboard/testkit";
import { peersOfEachTest, queryPostgres } from "./support/messaging.ts";

const { connect } = peersOfEachTest();
const SOCKETS = 40;

describe.skipIf(backendKind !== "postgres")("sockets closing together", () => {
  const broker = useTestBroker({ MAX_CONNECTIONS_PER_MESH: "100" });

  test(`the ends of ${SOCKETS} sockets closed at once are written in fewer than half as many transactions, each with its audit row`, async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: SOCKETS });
    const peers = await Promise.all(members.map((m) => connect(broker, mesh.id, m)));
    await Promise.all(peers.map((p) => p.close()));

    const ended = async () =>
      (await queryPostgres(
        broker.backend,
        (sql) => sql<{ live: number; ended: number; transactions: number; audited: number }[]>`
          SELECT count(*) FILTER (WHERE disconnected_at IS NULL)::int AS live,
                 count(*) FILTER (WHERE disconnected_at IS NOT NULL)::int AS ended,
                 count(DISTINCT xmin::text) FILTER (WHERE disconnected_at IS NOT NULL)::int AS transactions,
                 (SELECT count(*)::int FROM audit_log a
                  WHERE a.event = 'disconnect' AND a.mesh_id = ${mesh.id}::uuid AND a.meta->>'reason' LIKE 'closed %') AS audited
          FROM presences WHERE mesh_id = ${mesh.id}::uuid`,
      ))![0]!;
    const counts = await waitUntil(
      async () => {
        const now = await ended();
        return now.live === 0 && now.audited === SOCKETS && now;
      },
      30_000,
      "every presence ended",
    );
    expect(counts).toMatchObject({ live: 0, ended: SOCKETS, audited: SOCKETS });
    expect(counts.transactions).toBeLessThan(SOCKETS / 2);
  });
});
