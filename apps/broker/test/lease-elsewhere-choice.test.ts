// Which of a recipient's presences a send leases its delivery to
// (store/queue/send-parts.ts, directCte): none of another instance whose
// lease ran out or that stopped (killed, or gone, and not reaped yet),
// whatever its presence's status; with no other, the delivery stays queued
// for the member's live presences to claim. Both send statements (the direct
// one leases to presences here only), against rows of instances and
// presences written as such instances leave them.
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { enqueueSends, type LocalHolders } from "../src/store/queue/index.ts";
import { newMessage, useMeshDatabase } from "./support/scratch-db.ts";

const scratch = useMeshDatabase("lease-elsewhere-choice");
const HERE = "choice-sender";

async function instance(id: string, state: "live" | "lease ran out" | "stopped"): Promise<string> {
  await scratch.db.rows(sql`
    INSERT INTO broker_instances (id, hostname, pid, lease_expires_at, stopped_at)
    VALUES (${id}, 'h', 1,
            CASE WHEN ${state} = 'lease ran out' THEN now() - interval '1 second' ELSE now() + interval '1 minute' END,
            CASE WHEN ${state} = 'stopped' THEN now() END)`);
  return id;
}

/** A member of the mesh with a live presence on each instance given, by its status; the presences' ids by instance. */
async function recipient(presences: Record<string, "idle" | "working">): Promise<{ id: string; pubkey: string; on: Record<string, string> }> {
  const pubkey = crypto.randomUUID().replaceAll("-", "").repeat(2);
  const [m] = await scratch.db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${scratch.meshId}::uuid, ${pubkey}, 'r') RETURNING id`);
  const on: Record<string, string> = {};
  for (const [instanceId, status] of Object.entries(presences)) {
    const [p] = await scratch.db.rows<{ id: string }>(sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, status)
      VALUES (${scratch.meshId}::uuid, ${m!.id}::uuid, ${instanceId}, ${crypto.randomUUID()}, 'r', ${status}) RETURNING id`);
    on[instanceId] = p!.id;
  }
  return { id: m!.id, pubkey, on };
}

/** The presence a `now` send to `pubkey` is leased to (null: written queued), by the statement `recipientsHere` picks. */
async function leasedTo(pubkey: string, recipientsHere: boolean): Promise<string | null> {
  const holders: LocalHolders = { instanceId: HERE, unavailable: [], leaseSeconds: 30, notify: true, recipientsHere };
  const message = { ...newMessage(scratch.meshId, scratch.memberId, pubkey), priority: "now" as const };
  await enqueueSends(scratch.db, [message], holders);
  const [row] = await scratch.db.rows<{ holder: string | null }>(sql`
    SELECT lease_presence_id::text AS holder FROM deliveries WHERE message_id = ${message.id}::uuid`);
  return row!.holder;
}

describe("a delivery to a recipient with presences on other instances", () => {
  test("the send statement leases it to the busy presence of a live instance, not to the idle one of an instance whose lease ran out or that stopped", async () => {
    const live = await instance("live", "live");
    const lapsed = await instance("lapsed", "lease ran out");
    const stopped = await instance("stopped", "stopped");
    const r = await recipient({ [lapsed]: "idle", [stopped]: "idle", [live]: "working" });
    expect(await leasedTo(r.pubkey, false)).toBe(r.on[live]!);
  });

  for (const [name, recipientsHere] of [
    ["the send statement", false],
    ["the direct send statement", true],
  ] as const) {
    test(`${name} leases it to the busy presence here, not handing it to the idle one of an instance whose lease ran out`, async () => {
      const lapsed = await instance(`lapsed-beside-here-${name}`, "lease ran out");
      const r = await recipient({ [lapsed]: "idle", [HERE]: "working" });
      expect(await leasedTo(r.pubkey, recipientsHere)).toBe(r.on[HERE]!);
    });

    test(`${name} writes it queued when every instance holding the recipient's presences is gone`, async () => {
      const lapsed = await instance(`lapsed-only-${name}`, "lease ran out");
      const stopped = await instance(`stopped-only-${name}`, "stopped");
      const r = await recipient({ [lapsed]: "idle", [stopped]: "idle" });
      expect(await leasedTo(r.pubkey, recipientsHere)).toBeNull();
    });
  }
});
