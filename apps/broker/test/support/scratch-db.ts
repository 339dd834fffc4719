// Migrated databases for one test file, for tests that drive a service or
// the store directly against a real database.
import { afterAll, beforeAll } from "bun:test";
import { connect, migrate, type Database } from "@switchboard/db";
import { freshBackend, scratchDir, type TestBackend } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { rmSync } from "node:fs";
import type { NewMessage } from "../../src/store/queue/index.ts";

export function useScratchDatabase(name: string): { readonly db: Database } {
  let dir: string | undefined;
  let db: Database | undefined;
  beforeAll(async () => {
    dir = scratchDir(name);
    db = await connect({ dataDir: dir });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get db(): Database {
      if (!db) throw new Error("the scratch database is opened before the file's tests");
      return db;
    },
  };
}

/**
 * A migrated database on the suite's backend for one test file: a database of
 * its own on the Postgres server when DATABASE_URL is set (so plans can be
 * read), else an embedded one.
 */
export function useBackendDatabase(): { readonly db: Database; readonly backend: TestBackend } {
  let backend: TestBackend | undefined;
  let db: Database | undefined;
  beforeAll(async () => {
    backend = await freshBackend();
    db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    await backend?.dispose();
  });
  return {
    get db(): Database {
      if (!db) throw new Error("the database is opened before the file's tests");
      return db;
    },
    get backend(): TestBackend {
      if (!backend) throw new Error("the backend is started before the file's tests");
      return backend;
    },
  };
}

/**
 * Registers instance `id` as a running one is, its lease an hour ahead: a
 * send leases to presences of another instance only while it runs.
 */
export async function liveInstance(db: Database, id: string): Promise<void> {
  await db.rows(sql`
    INSERT INTO broker_instances (id, hostname, pid, lease_expires_at) VALUES (${id}, 'test', 0, now() + interval '1 hour')
    ON CONFLICT (id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at, stopped_at = NULL`);
}

/** A mesh named `slug` with one member; their ids. */
export async function meshWithMember(db: Database, slug: string): Promise<{ meshId: string; memberId: string }> {
  const [row] = await db.rows<{ meshId: string; memberId: string }>(sql`
    WITH mesh AS (INSERT INTO meshes (slug, name) VALUES (${slug}, ${slug}) RETURNING id),
    member AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, ${`${slug}-key`}, 'n' FROM mesh RETURNING id, mesh_id)
    SELECT mesh_id AS "meshId", id AS "memberId" FROM member`);
  return row!;
}

/** A send as the send statement takes it: a new id, priority next, plain and empty, an hour to live. */
export function newMessage(meshId: string, senderId: string, targetSpec: string): NewMessage {
  return {
    id: crypto.randomUUID(),
    meshId,
    senderId,
    clientId: null,
    targetSpec,
    priority: "next",
    nonce: "plain",
    ciphertext: "",
    replyTo: null,
    ttlSeconds: 3600,
    replyWaitSeconds: null,
  };
}

/** useBackendDatabase with a mesh of one member made before the file's tests: their ids too. */
export function useMeshDatabase(slug: string): {
  readonly db: Database;
  readonly backend: TestBackend;
  readonly meshId: string;
  readonly memberId: string;
} {
  const scratch = useBackendDatabase();
  let ids: { meshId: string; memberId: string } | undefined;
  beforeAll(async () => {
    ids = await meshWithMember(scratch.db, slug);
  });
  const made = () => {
    if (!ids) throw new Error("the mesh is made before the file's tests");
    return ids;
  };
  return {
    get db() {
      return scratch.db;
    },
    get backend() {
      return scratch.backend;
    },
    get meshId() {
      return made().meshId;
    },
    get memberId() {
      return made().memberId;
    },
  };
}

/**
 * `count` messages from the member to itself, each with its delivery expired
 * unacknowledged: what deliveries keeps for the retention beside what is
 * owed (acknowledged ones move to acked_deliveries), which a statement
 * reading the queue must not read.
 */
export async function settledDeliveries(db: Database, ids: { meshId: string; memberId: string }, count: number, ciphertext = "c"): Promise<void> {
  await db.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${ids.meshId}::uuid, ${ids.memberId}::uuid, 'k', 'now', 'n', ${ciphertext}, now() - interval '1 minute'
      FROM generate_series(1, ${count})
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state)
    SELECT id, ${ids.memberId}::uuid, 'now', now() - interval '1 minute', 'expired' FROM m`);
}
