// Deliveries another instance leased here are read as its notices name them
// (services/delivery/leased-elsewhere.ts). After the bus listened again, what
// notices name from then on (newer sends) waits for the recovery of what
// was missed meanwhile (holdLaterUntil), while what they named before goes
// out at once. Here the reads are seen as the statements are made, against
// a real database, and the recovery is a promise the test resolves.
import { describe, expect, test } from "bun:test";
import { toQuery, type Database, type Statement } from "@switchboard/db";
import { waitUntil } from "@switchboard/testkit";
import { createLogger } from "../src/log.ts";
import { LeasedElsewhere } from "../src/services/delivery/leased-elsewhere.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("leased-elsewhere-gate");

/** The delivery ids of each read of leases, in the order the statements were made. */
function readsSeen(): { db: Database; reads: number[][] } {
  const reads: number[][] = [];
  const db: Database = {
    ...scratch.db,
    relaxed: {
      rows: <T>(query: Statement): Promise<T[]> => {
        const { sql, params } = toQuery(query);
        if (sql.includes(`AS x("presenceId" uuid, seq bigint)`)) {
          reads.push((JSON.parse(String(params[0])) as Array<{ seq: number }>).map((p) => p.seq));
        }
        return scratch.db.relaxed.rows<T>(query);
      },
    },
  };
  return { db, reads };
}

/** Lets every promise chain the last step started run to its next wait on I/O or a timer. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("deliveries named by notices after the bus listened again", () => {
  test("wait for the recovery, while those named before go out", async () => {
    const { db, reads } = readsSeen();
    const handed: number[] = [];
    const leased = new LeasedElsewhere(db, async () => void handed.push(handed.length + 1), createLogger("silent", {}));
    const presence = crypto.randomUUID();
    leased.take([[presence, 1]]);
    let recovered = () => {};
    leased.holdLaterUntil(new Promise<void>((resolve) => (recovered = resolve)));
    leased.take([[presence, 2]]);
    await waitUntil(() => handed.length >= 1 || undefined, 10_000, "the first notice's deliveries handed out");
    await settle();
    // The reader is at the gate: the later notice's delivery is not read yet.
    expect(reads).toEqual([[1]]);
    const allOut = leased.settled();
    recovered();
    await allOut;
    expect(reads).toEqual([[1], [2]]);
    expect(handed).toEqual([1, 2]);
    await leased.stop();
  });
});
