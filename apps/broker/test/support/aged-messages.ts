// Messages made by hand at a chosen age, with one delivery in a chosen state,
// as the prune's tests need them (a real send is always made now).
import type { Database } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { ackByHand } from "./acked.ts";

/**
 * A message of `meshId` from and to `memberId`, to `target`, sent
 * `ageSeconds` ago and expiring `expiresInSeconds` from now, with one
 * delivery in `state` ("acked" moves it to acked_deliveries) or none.
 */
export async function agedMessage(
  db: Database,
  at: { meshId: string; memberId: string },
  target: string,
  ageSeconds: number,
  expiresInSeconds: number,
  state: string | null,
): Promise<string> {
  const [m] = await db.rows<{ id: string }>(sql`
    INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, created_at, expires_at)
    VALUES (${at.meshId}::uuid, ${at.memberId}::uuid, ${target}, 'now', 'n', 'c',
            now() - make_interval(secs => ${ageSeconds}), now() + make_interval(secs => ${expiresInSeconds}))
    RETURNING id`);
  if (state !== null) {
    await db.rows(sql`
      INSERT INTO deliveries (message_id, recipient_member_id, priority, state, expires_at)
      VALUES (${m!.id}::uuid, ${at.memberId}::uuid, 'now', ${state === "acked" ? "leased" : state}, now() + make_interval(secs => ${expiresInSeconds}))`);
    if (state === "acked") await db.rows(ackByHand(sql`d.message_id = ${m!.id}::uuid`));
  }
  return m!.id;
}

/** No messages and no deliveries: a test that counts what a walk reads or takes starts from none (a file's tests share a database). */
export async function noMessages(db: Database): Promise<void> {
  await db.rows(sql`DELETE FROM deliveries`);
  await db.rows(sql`DELETE FROM acked_deliveries`);
  await db.rows(sql`DELETE FROM messages`);
}
