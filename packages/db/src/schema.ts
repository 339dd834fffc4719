// The one definition of the tables. drizzle-kit turns this into the SQL
// migrations in ../drizzle; the broker's store layer writes its queries
// against these names.
import { sql } from "drizzle-orm";
import {
  bigserial,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const createdAt = () => tstz("created_at").notNull().defaultNow();

export const meshes = pgTable("meshes", {
  id: uuid("id").primaryKey().defaultRandom(),
  slug: text("slug").notNull().unique(),
  name: text("name").notNull(),
  createdAt: createdAt(),
});

export const members = pgTable(
  "members",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    meshId: uuid("mesh_id")
      .notNull()
      .references(() => meshes.id, { onDelete: "cascade" }),
    pubkey: text("pubkey").notNull(),
    displayName: text("display_name").notNull(),
    tags: text("tags").array().notNull().default(sql`'{}'::text[]`),
    role: text("role").notNull().default("member"),
    createdAt: createdAt(),
    revokedAt: tstz("revoked_at"),
  },
  (t) => [
    uniqueIndex("members_mesh_pubkey_key").on(t.meshId, t.pubkey),
    index("members_tags_idx").using("gin", t.tags),
  ],
);

export const tokens = pgTable(
  "tokens",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    memberId: uuid("member_id")
      .notNull()
      .references(() => members.id, { onDelete: "cascade" }),
    kind: text("kind").notNull(),
    tokenHash: text("token_hash").notNull().unique(),
    createdAt: createdAt(),
    revokedAt: tstz("revoked_at"),
  },
  (t) => [index("tokens_member_idx").on(t.memberId)],
);

export const brokerInstances = pgTable("broker_instances", {
  id: text("id").primaryKey(),
  hostname: text("hostname").notNull(),
  pid: integer("pid").notNull(),
  startedAt: tstz("started_at").notNull().defaultNow(),
  leaseExpiresAt: tstz("lease_expires_at").notNull(),
  stoppedAt: tstz("stopped_at"),
});

export const presences = pgTable(
  "presences",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    meshId: uuid("mesh_id")
      .notNull()
      .references(() => meshes.id, { onDelete: "cascade" }),
    memberId: uuid("member_id")
      .notNull()
      .references(() => members.id, { onDelete: "cascade" }),
    instanceId: text("instance_id").notNull(),
    sessionId: text("session_id").notNull(),
    pid: integer("pid"),
    cwd: text("cwd"),
    displayName: text("display_name").notNull(),
    status: text("status").notNull().default("idle"),
    statusSource: text("status_source").notNull().default("manual"),
    statusUpdatedAt: tstz("status_updated_at").notNull().defaultNow(),
    connectedAt: tstz("connected_at").notNull().defaultNow(),
    lastPingAt: tstz("last_ping_at").notNull().defaultNow(),
    disconnectedAt: tstz("disconnected_at"),
  },
  (t) => [
    index("presences_live_mesh_idx").on(t.meshId).where(sql`disconnected_at IS NULL`),
    index("presences_live_member_idx").on(t.memberId).where(sql`disconnected_at IS NULL`),
    index("presences_live_instance_idx").on(t.instanceId).where(sql`disconnected_at IS NULL`),
    uniqueIndex("presences_live_session_key")
      .on(t.memberId, t.sessionId)
      .where(sql`disconnected_at IS NULL`),
    index("presences_gone_idx").on(t.disconnectedAt).where(sql`disconnected_at IS NOT NULL`),
  ],
);

export const messages = pgTable(
  "messages",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    meshId: uuid("mesh_id")
      .notNull()
      .references(() => meshes.id, { onDelete: "cascade" }),
    senderMemberId: uuid("sender_member_id")
      .notNull()
      .references(() => members.id, { onDelete: "cascade" }),
    clientId: text("client_id"),
    targetSpec: text("target_spec").notNull(),
    priority: text("priority").notNull(),
    nonce: text("nonce").notNull(),
    ciphertext: text("ciphertext").notNull(),
    replyTo: uuid("reply_to"),
    createdAt: createdAt(),
    expiresAt: tstz("expires_at").notNull(),
  },
  (t) => [
    uniqueIndex("messages_sender_client_key").on(t.senderMemberId, t.clientId),
    index("messages_expires_idx").on(t.expiresAt),
  ],
);

export const deliveries = pgTable(
  "deliveries",
  {
    // The sequence doubles as the FIFO order of a recipient's queue.
    id: bigserial("id", { mode: "number" }).primaryKey(),
    messageId: uuid("message_id")
      .notNull()
      .references(() => messages.id, { onDelete: "cascade" }),
    recipientMemberId: uuid("recipient_member_id")
      .notNull()
      .references(() => members.id, { onDelete: "cascade" }),
    priority: text("priority").notNull(),
    state: text("state").notNull().default("queued"),
    leasePresenceId: uuid("lease_presence_id"),
    leaseExpiresAt: tstz("lease_expires_at"),
    attempt: integer("attempt").notNull().default(0),
    createdAt: createdAt(),
    expiresAt: tstz("expires_at").notNull(),
    deliveredAt: tstz("delivered_at"),
    ackedAt: tstz("acked_at"),
  },
  (t) => [
    uniqueIndex("deliveries_message_recipient_key").on(t.messageId, t.recipientMemberId),
    index("deliveries_queued_idx")
      .on(t.recipientMemberId, t.id)
      .where(sql`state = 'queued'`),
    index("deliveries_leased_idx")
      .on(t.leaseExpiresAt)
      .where(sql`state = 'leased'`),
    index("deliveries_lease_presence_idx")
      .on(t.leasePresenceId)
      .where(sql`state = 'leased'`),
  ],
);

export const channels = pgTable(
  "channel_members",
  {
    meshId: uuid("mesh_id")
      .notNull()
      .references(() => meshes.id, { onDelete: "cascade" }),
    channel: text("channel").notNull(),
    memberId: uuid("member_id")
      .notNull()
      .references(() => members.id, { onDelete: "cascade" }),
    joinedAt: tstz("joined_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.meshId, t.channel, t.memberId] }),
    index("channel_members_member_idx").on(t.memberId),
  ],
);

export const pendingHookStatuses = pgTable(
  "pending_hook_statuses",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    memberId: uuid("member_id")
      .notNull()
      .references(() => members.id, { onDelete: "cascade" }),
    sessionId: text("session_id"),
    pid: integer("pid"),
    cwd: text("cwd"),
    status: text("status").notNull(),
    createdAt: createdAt(),
    expiresAt: tstz("expires_at").notNull(),
  },
  (t) => [index("pending_hook_statuses_member_idx").on(t.memberId)],
);

export const helloReplays = pgTable(
  "hello_replays",
  {
    signature: text("signature").primaryKey(),
    expiresAt: tstz("expires_at").notNull(),
  },
  (t) => [index("hello_replays_expires_idx").on(t.expiresAt)],
);

export const auditLog = pgTable(
  "audit_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: tstz("at").notNull().defaultNow(),
    event: text("event").notNull(),
    meshId: uuid("mesh_id"),
    memberId: uuid("member_id"),
    // Metadata only: never a nonce or a ciphertext.
    meta: jsonb("meta").notNull().default(sql`'{}'::jsonb`),
  },
  (t) => [index("audit_log_at_idx").on(t.at)],
);
