// API tokens remembered for a few seconds (services/api-senders.ts), against
// a real database: a revocation is never outlived by what memory holds, not
// even by a lookup that was under way when the revocation came.
import { describe, expect, spyOn, test } from "bun:test";
import { sql } from "drizzle-orm";
import { ApiSenders } from "../src/services/api-senders.ts";
import { hashToken } from "../src/services/tokens.ts";
import * as directory from "../src/store/directory.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("api-senders");

/** A member of a new mesh with an API token; revoke() revokes the member as the admin API does, in the database. */
async function memberWithApiToken() {
  const slug = `m-${crypto.randomUUID()}`;
  const [mesh] = await scratch.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES (${slug}, ${slug}) RETURNING id`);
  const [member] = await scratch.db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${mesh!.id}, ${crypto.randomUUID()}, 'app') RETURNING id`);
  const token = `sba_${crypto.randomUUID()}`;
  await scratch.db.rows(sql`INSERT INTO tokens (member_id, kind, token_hash) VALUES (${member!.id}, 'api', ${hashToken(token)})`);
  const revoke = () => scratch.db.rows(sql`UPDATE members SET revoked_at = now() WHERE id = ${member!.id}`);
  return { memberId: member!.id, token, revoke };
}

describe("ApiSenders", () => {
  test("a token is remembered, and forgotten when its member is revoked", async () => {
    const senders = new ApiSenders(scratch.db, { ttlMs: 60_000, maxEntries: 100, clock: Date.now });
    const { memberId, token, revoke } = await memberWithApiToken();
    expect((await senders.find(token))?.memberId).toBe(memberId);
    await revoke();
    // Still in memory until the revocation is heard of.
    expect((await senders.find(token))?.memberId).toBe(memberId);
    senders.forget(memberId);
    expect(await senders.find(token)).toBeNull();
  });

  test("a lookup under way when the revocation comes answers its request, and is not remembered", async () => {
    const senders = new ApiSenders(scratch.db, { ttlMs: 60_000, maxEntries: 100, clock: Date.now });
    const { memberId, token, revoke } = await memberWithApiToken();
    const lookup = directory.findApiSender;
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    // The lookup reads the database, then its answer waits until the revocation is in.
    const spy = spyOn(directory, "findApiSender").mockImplementation(async (executor, hash) => {
      const found = await lookup(executor, hash);
      await held;
      return found;
    });
    try {
      const inFlight = senders.find(token);
      await revoke();
      senders.forget(memberId);
      release();
      expect((await inFlight)?.memberId).toBe(memberId);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
    expect(await senders.find(token)).toBeNull();
  });
});
