// The send statement's notice to the other instances stays under Postgres's
// 8000-byte payload limit however many meshes one batch touches: past it the
// statement failed, and a multi-tenant burst was written a send at a time.
import { expect, test } from "bun:test";
import { connect, migrate, type Database } from "@switchboard/db";
import { freshBackend, waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { BUS_CHANNEL } from "../src/store/notify.ts";
import { enqueueSends, type NewMessage } from "../src/store/queue/index.ts";
import { newMessage } from "./support/scratch-db.ts";

test("a batch of sends into 300 meshes, each to an offline member, is written in one statement; its notices name every mesh", async () => {
  const backend = await freshBackend();
  let db: Database | undefined;
  try {
    db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
    await migrate(db);
    const one = async <T>(query: ReturnType<typeof sql>) => (await db!.rows<T>(query))[0]!;
    const messages: NewMessage[] = [];
    for (let i = 0; i < 300; i++) {
      const slug = `m-${crypto.randomUUID()}`;
      const mesh = await one<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES (${slug}, ${slug}) RETURNING id`);
      const member = (name: string) =>
        one<{ id: string; pubkey: string }>(sql`
          INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${mesh.id}, ${crypto.randomUUID()}, ${name}) RETURNING id, pubkey`);
      const sender = await member("sender");
      const recipient = await member("recipient");
      messages.push(newMessage(mesh.id, sender.id, recipient.pubkey));
    }
    // The notices are read back as the other instances' listener would.
    const heard: string[] = [];
    const unlisten = await db.listen(BUS_CHANNEL, (payload) => heard.push(payload));
    try {
      const holders = { instanceId: "enqueue-notify", unavailable: [], leaseSeconds: 30, notify: true };
      const written = await enqueueSends(db, messages, holders);
      expect(written.filter((w) => w.inserted)).toHaveLength(300);
      // Three notices of at most 100 meshes each.
      expect(written[0]!.notified).toBe(3);
      const meshes = () => heard.flatMap((p) => (JSON.parse(p) as { meshes?: string[] }).meshes ?? []);
      await waitUntil(() => meshes().length >= 300, 5000, "the notices of 300 meshes");
      expect(new Set(meshes())).toEqual(new Set(messages.map((m) => m.meshId)));
    } finally {
      await unlisten();
    }
  } finally {
    await db?.close();
    await backend.dispose();
  }
});
