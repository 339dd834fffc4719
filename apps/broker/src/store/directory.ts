// The directory of meshes, members and their tokens: the SQL behind the
// admin API (enrolment, revocation, token issue, live peers) and token lookup.
// Times leave the database as ISO strings and numbers as int, so that
// postgres.js and PGlite hand back the same shapes.
import type { Executor } from "@switchboard/db";
import type { MemberView, MeshView, PresenceView, RevokedToken, TokenView } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { dropUndelivered } from "./queue/drop.ts";
import { isoTime, jsonParam } from "./sql.ts";

const MEMBER_COLUMNS = sql`m.id::text AS "id", m.pubkey AS "pubkey", m.display_name AS "displayName",
  to_jsonb(m.tags) AS "tags", m.role AS "role", ${isoTime("m.revoked_at")} AS "revokedAt"`;

/** Null when the slug is taken. */
export async function insertMesh(db: Executor, slug: string, name: string): Promise<MeshView | null> {
  const rows = await db.rows<MeshView>(sql`
    INSERT INTO meshes (slug, name) VALUES (${slug}, ${name})
    ON CONFLICT (slug) DO NOTHING
    RETURNING id::text AS "id", slug, name`);
  return rows[0] ?? null;
}

export function listMeshes(db: Executor): Promise<MeshView[]> {
  return db.rows<MeshView>(sql`SELECT id::text AS "id", slug, name FROM meshes ORDER BY created_at, slug`);
}

/** By id when ref is a UUID (an id match wins over a slug that looks like one), else by slug. */
export async function findMesh(db: Executor, ref: string, refIsUuid: boolean): Promise<MeshView | null> {
  const where = refIsUuid ? sql`id = ${ref}::uuid OR slug = ${ref}` : sql`slug = ${ref}`;
  const rows = await db.rows<MeshView>(sql`
    SELECT id::text AS "id", slug, name FROM meshes WHERE ${where}
    ORDER BY (slug = ${ref}) LIMIT 1`);
  return rows[0] ?? null;
}

export interface NewMember {
  pubkey: string;
  displayName: string;
  tags: readonly string[];
  role: "member" | "observer";
}

/** Null when the pubkey is already enrolled in the mesh (revoked or not). */
export async function insertMember(db: Executor, meshId: string, member: NewMember): Promise<MemberView | null> {
  const rows = await db.rows<MemberView>(sql`
    INSERT INTO members AS m (mesh_id, pubkey, display_name, tags, role)
    VALUES (${meshId}::uuid, ${member.pubkey}, ${member.displayName},
            ARRAY(SELECT jsonb_array_elements_text(${jsonParam(member.tags)})), ${member.role})
    ON CONFLICT (mesh_id, pubkey) DO NOTHING
    RETURNING ${MEMBER_COLUMNS}`);
  return rows[0] ?? null;
}

export function listMembers(db: Executor, meshId: string): Promise<MemberView[]> {
  return db.rows<MemberView>(sql`
    SELECT ${MEMBER_COLUMNS} FROM members m WHERE m.mesh_id = ${meshId}::uuid ORDER BY m.created_at, m.pubkey`);
}

/** By id when ref is a UUID, else by pubkey; only within the mesh. */
export async function findMember(db: Executor, meshId: string, ref: string, refIsUuid: boolean): Promise<MemberView | null> {
  const match = refIsUuid ? sql`m.id = ${ref}::uuid` : sql`m.pubkey = ${ref}`;
  const rows = await db.rows<MemberView>(sql`
    SELECT ${MEMBER_COLUMNS} FROM members m WHERE m.mesh_id = ${meshId}::uuid AND ${match}`);
  return rows[0] ?? null;
}

export interface Revocation {
  revokedAt: string;
  /** False when the member was already revoked: nothing was changed. */
  changed: boolean;
  /** The member's presences this revocation ended. */
  presencesClosed: string[];
}

/**
 * Revokes a member with everything hanging off it: its tokens, the messages
 * still owed to it, its live presences, and an audit row. Run inside one
 * transaction. The guarded UPDATE takes the member's row lock, so of two
 * concurrent revocations exactly one does the work.
 */
export async function revokeMember(tx: Executor, meshId: string, memberId: string): Promise<Revocation> {
  // The mesh's row first, in a mode a hello's admission waits for
  // (hello.ts lockMeshes) and waits for in turn: a hello admitted first has
  // its presence committed for this revocation to end, and one still waiting
  // reads the revocation once it has the lock.
  await tx.rows(sql`SELECT id FROM meshes WHERE id = ${meshId}::uuid FOR SHARE`);
  const [first] = await tx.rows<{ revokedAt: string }>(sql`
    UPDATE members SET revoked_at = now()
    WHERE id = ${memberId}::uuid AND mesh_id = ${meshId}::uuid AND revoked_at IS NULL
    RETURNING ${isoTime("revoked_at")} AS "revokedAt"`);
  if (first === undefined) {
    const [earlier] = await tx.rows<{ revokedAt: string }>(sql`
      SELECT ${isoTime("revoked_at")} AS "revokedAt" FROM members WHERE id = ${memberId}::uuid`);
    if (earlier === undefined) throw new Error(`member ${memberId} vanished during revocation`);
    return { revokedAt: earlier.revokedAt, changed: false, presencesClosed: [] };
  }
  // The presences before their deliveries: the order a close and a replacing
  // hello take them in (disconnectPresences), so none of them can deadlock;
  // the presences in the order of their ids, as a batch of ends takes them.
  const closed = await tx.rows<{ id: string }>(sql`
    UPDATE presences SET disconnected_at = now()
    WHERE id = ANY (ARRAY(
      SELECT id FROM presences WHERE member_id = ${memberId}::uuid AND disconnected_at IS NULL ORDER BY id FOR UPDATE))
    RETURNING id::text AS id`);
  const deliveriesDropped = await dropUndelivered(tx, memberId);
  await tx.rows(sql`
    WITH tokens_revoked AS (
      UPDATE tokens SET revoked_at = now()
      WHERE member_id = ${memberId}::uuid AND revoked_at IS NULL RETURNING 1
    )
    INSERT INTO audit_log (event, mesh_id, member_id, meta)
    SELECT 'revoke', ${meshId}::uuid, ${memberId}::uuid, jsonb_build_object(
      'tokensRevoked', (SELECT count(*)::int FROM tokens_revoked),
      'deliveriesDropped', ${deliveriesDropped}::int,
      'presencesClosed', ${closed.length}::int)`);
  return { revokedAt: first.revokedAt, changed: true, presencesClosed: closed.map((p) => p.id) };
}

const TOKEN_COLUMNS = sql`id::text AS "id", kind, ${isoTime("created_at")} AS "createdAt", ${isoTime("revoked_at")} AS "revokedAt"`;

/**
 * Only the hash is stored: the token itself is shown once, to the caller.
 * Null when the member is revoked. The member's row is read FOR SHARE, which
 * waits for a revocation under way (it updates that row first), so a token
 * is never inserted after the revocation revoked the member's tokens.
 */
export async function insertToken(db: Executor, memberId: string, kind: TokenView["kind"], tokenHash: string): Promise<TokenView | null> {
  const [row] = await db.rows<TokenView>(sql`
    INSERT INTO tokens (member_id, kind, token_hash)
    SELECT id, ${kind}, ${tokenHash} FROM members WHERE id = ${memberId}::uuid AND revoked_at IS NULL FOR SHARE
    RETURNING ${TOKEN_COLUMNS}`);
  return row ?? null;
}

/** A member's tokens, revoked ones included, oldest first. */
export function listTokens(db: Executor, memberId: string): Promise<TokenView[]> {
  return db.rows<TokenView>(sql`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE member_id = ${memberId}::uuid ORDER BY created_at, id`);
}

/**
 * Revokes one of a member's tokens (its audit row in the same statement);
 * one revoked already keeps its time (`changed` false). Null when the member
 * has no such token.
 */
export async function revokeToken(
  tx: Executor,
  meshId: string,
  memberId: string,
  tokenId: string,
): Promise<{ token: RevokedToken; changed: boolean } | null> {
  const [revoked] = await tx.rows<RevokedToken>(sql`
    WITH revoked AS (
      UPDATE tokens SET revoked_at = now()
      WHERE id = ${tokenId}::uuid AND member_id = ${memberId}::uuid AND revoked_at IS NULL
      RETURNING ${TOKEN_COLUMNS}
    ),
    audited AS (
      INSERT INTO audit_log (event, mesh_id, member_id, meta)
      SELECT 'revoke', ${meshId}::uuid, ${memberId}::uuid, jsonb_build_object('tokenId', id, 'kind', kind) FROM revoked
    )
    SELECT * FROM revoked`);
  if (revoked !== undefined) return { token: revoked, changed: true };
  const [earlier] = await tx.rows<RevokedToken>(sql`
    SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = ${tokenId}::uuid AND member_id = ${memberId}::uuid AND revoked_at IS NOT NULL`);
  return earlier === undefined ? null : { token: earlier, changed: false };
}

/** The member a token of this kind belongs to, if neither the token nor the member is revoked. */
export async function findMemberByTokenHash(
  db: Executor,
  tokenHash: string,
  kind: string,
): Promise<{ memberId: string; meshId: string } | null> {
  const rows = await db.rows<{ memberId: string; meshId: string }>(sql`
    SELECT m.id::text AS "memberId", m.mesh_id::text AS "meshId"
    FROM tokens t JOIN members m ON m.id = t.member_id
    WHERE t.token_hash = ${tokenHash} AND t.kind = ${kind} AND t.revoked_at IS NULL AND m.revoked_at IS NULL`);
  return rows[0] ?? null;
}

export interface ApiSender {
  /** The API token it was found by. */
  tokenId: string;
  memberId: string;
  meshId: string;
  meshSlug: string;
  pubkey: string;
  role: "member" | "observer";
}

/** The member an API token acts as, if neither the token nor the member is revoked. */
export async function findApiSender(db: Executor, tokenHash: string): Promise<ApiSender | null> {
  const rows = await db.rows<ApiSender>(sql`
    SELECT t.id::text AS "tokenId", m.id::text AS "memberId", m.mesh_id::text AS "meshId", ms.slug AS "meshSlug", m.pubkey, m.role
    FROM tokens t JOIN members m ON m.id = t.member_id JOIN meshes ms ON ms.id = m.mesh_id
    WHERE t.token_hash = ${tokenHash} AND t.kind = 'api' AND t.revoked_at IS NULL AND m.revoked_at IS NULL`);
  return rows[0] ?? null;
}

export function listLivePeers(db: Executor, meshId: string): Promise<PresenceView[]> {
  // Each presence's member probed by its id (OFFSET 0 keeps it a probe):
  // joined, on statistics in which one mesh holds most presences, a small
  // mesh's few were merged with a walk of every member by id.
  return db.rows<PresenceView>(sql`
    SELECT p.id::text AS "presenceId", m.id::text AS "memberId", m.pubkey AS "pubkey",
           p.display_name AS "displayName", p.session_id AS "sessionId", p.status AS "status",
           p.status_source AS "statusSource", p.pid AS "pid", p.cwd AS "cwd",
           ${isoTime("p.connected_at")} AS "connectedAt", p.instance_id AS "instanceId"
    FROM presences p
    CROSS JOIN LATERAL (SELECT id, pubkey, revoked_at FROM members WHERE id = p.member_id OFFSET 0) m
    WHERE p.mesh_id = ${meshId}::uuid AND p.disconnected_at IS NULL AND m.revoked_at IS NULL
    ORDER BY p.connected_at, p.id`);
}
