// The one definition of the tables. drizzle-kit turns this into the SQL
// migrations in ../drizzle; the broker's store layer writes its queries
// against these names.
import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  check,
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

// Enum-like text columns accept only their values, so no input that slipped
// past the edge can store a status, state or priority outside the protocol.
const STATUSES = ["idle", "working", "dnd"] as const;
const SOURCES = ["hook", "manual", "jsonl"] as const;
const PRIORITIES = ["now", "next", "low"] as const;
const oneOf = (name: string, column: string, values: readonly string[]) =>
  check(name, sql.raw(`${column} IN (${values.map((v) => `'${v}'`).join(", ")})`));

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
    // Set while the member's queue holds MAX_QUEUED_PER_MEMBER deliveries or
    // more, by a sweep (store/queue/full-queues.ts): the send statement reads
    // it from the row it routes by, rather than counting a queue per send.
    queueFullAt: tstz("queue_full_at"),
  },
  (t) => [
    uniqueIndex("members_mesh_pubkey_key").on(t.meshId, t.pubkey),
    // Full queues are few: the sweep finds those to clear without reading every member.
    index("members_queue_full_idx")
      .on(t.queueFullAt)
      .where(sql`queue_full_at IS NOT NULL`),
    // Revocations are few: housekeeping finds the recent ones without reading every member.
    index("members_revoked_idx")
      .on(t.revokedAt)
      .where(sql`revoked_at IS NOT NULL`),
    index("members_tags_idx").using("gin", t.tags),
    oneOf("members_role_check", "role", ["member", "observer"]),
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
  (t) => [index("tokens_member_idx").on(t.memberId), oneOf("tokens_kind_check", "kind", ["hook", "api"])],
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
    // Each index of live presences holds only rows whose leading column IS
    // NOT NULL (true of every row): any test of that column implies it,
    // while a plain "disconnected_at IS NULL" does not, so a statement that
    // probes one column cannot be planned as a walk of every live presence
    // through the index of another, which a plan made while the statistics
    // say the table is empty costs the same as the probe. A walk of all live
    // presences names member_id to take its index.
    index("presences_live_mesh_idx").on(t.meshId).where(sql`disconnected_at IS NULL AND mesh_id IS NOT NULL`),
    index("presences_live_member_idx").on(t.memberId).where(sql`disconnected_at IS NULL AND member_id IS NOT NULL`),
    index("presences_live_instance_idx").on(t.instanceId).where(sql`disconnected_at IS NULL AND instance_id IS NOT NULL`),
    uniqueIndex("presences_live_session_key")
      .on(t.memberId, t.sessionId)
      .where(sql`disconnected_at IS NULL AND member_id IS NOT NULL`),
    index("presences_gone_idx").on(t.disconnectedAt).where(sql`disconnected_at IS NOT NULL`),
    // A session's latest presence, live or gone: a reconnect keeps its status.
    index("presences_session_idx").on(t.memberId, t.sessionId, t.connectedAt),
    oneOf("presences_status_check", "status", STATUSES),
    oneOf("presences_status_source_check", "status_source", SOURCES),
  ],
);

export const messages = pgTable(
  "messages",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    // No foreign keys here or in deliveries: the send statement proves every
    // one (it routes from members, tests the sender, and writes a message
    // with its deliveries), meshes and members are never deleted (a member is
    // revoked), and the prune deletes a message's deliveries itself. A key's
    // check cost a probe and a row lock per inserted row, and the locks made
    // concurrent sends into one mesh write multixacts (docs/scaling.md).
    meshId: uuid("mesh_id").notNull(),
    senderMemberId: uuid("sender_member_id").notNull(),
    clientId: text("client_id"),
    targetSpec: text("target_spec").notNull(),
    priority: text("priority").notNull(),
    nonce: text("nonce").notNull(),
    ciphertext: text("ciphertext").notNull(),
    replyTo: uuid("reply_to"),
    // Set while an HTTP sender waits for a reply (?wait=S): a reply to it is
    // held for that waiter until then, instead of going to a socket or webhook.
    replyWaitUntil: tstz("reply_wait_until"),
    // How many waits hold them (retries with one key may wait together): the
    // hold is released when the last ends. Null outside a hold.
    replyWaits: integer("reply_waits"),
    // Insertion order, for channel history: created_at is shared by a batch.
    seq: bigserial("seq", { mode: "number" }).notNull(),
    createdAt: createdAt(),
    expiresAt: tstz("expires_at").notNull(),
  },
  (t) => [
    uniqueIndex("messages_sender_client_key").on(t.senderMemberId, t.clientId),
    index("messages_reply_to_idx")
      .on(t.replyTo)
      .where(sql`reply_to IS NOT NULL`),
    index("messages_channel_history_idx")
      .on(t.meshId, t.targetSpec, t.seq)
      .where(sql`target_spec LIKE '#%'`),
    // The prune's way to the oldest messages of each retention, without
    // reading the table: direct ones go after the settled retention, channel
    // ones after the history retention (queue/prune.ts).
    index("messages_direct_created_idx")
      .on(t.createdAt)
      .where(sql`target_spec NOT LIKE '#%'`),
    index("messages_channel_created_idx")
      .on(t.createdAt)
      .where(sql`target_spec LIKE '#%'`),
    oneOf("messages_priority_check", "priority", PRIORITIES),
  ],
);

export const deliveries = pgTable(
  "deliveries",
  {
    // The sequence doubles as the FIFO order of a recipient's queue.
    id: bigserial("id", { mode: "number" }).primaryKey(),
    messageId: uuid("message_id").notNull(),
    recipientMemberId: uuid("recipient_member_id").notNull(),
    priority: text("priority").notNull(),
    state: text("state").notNull().default("queued"),
    leasePresenceId: uuid("lease_presence_id"),
    leaseExpiresAt: tstz("lease_expires_at"),
    attempt: integer("attempt").notNull().default(0),
    createdAt: createdAt(),
    expiresAt: tstz("expires_at").notNull(),
    deliveredAt: tstz("delivered_at"),
    // Written only by instances from before migration 0010, whose acks mark
    // the row 'acked' in place; since then an ack moves it to
    // acked_deliveries. Kept so such an instance works on beside new ones
    // through a rolling upgrade (docs/deploy.md).
    ackedAt: tstz("acked_at"),
  },
  (t) => [
    // "message_id IS NOT NULL" (true of every row) keeps this key for the
    // statements that name a message, as the indexes of live presences are
    // kept for theirs: a probe of one member's queue could otherwise be
    // planned as a walk of the whole key testing its second column.
    uniqueIndex("deliveries_message_recipient_key")
      .on(t.messageId, t.recipientMemberId)
      .where(sql`message_id IS NOT NULL`),
    index("deliveries_queued_idx")
      .on(t.recipientMemberId, t.id)
      .where(sql`state = 'queued'`),
    // The queued messages a busy session may take (priority now): its claims
    // read these, not the held messages that make up most of its queue.
    index("deliveries_queued_now_idx")
      .on(t.recipientMemberId, t.id)
      .where(sql`state = 'queued' AND priority = 'now'`),
    // The expiry sweep's way to what it expires (queue/expire.ts): queued
    // deliveries by their expiry. A message's own expiry led it back to every
    // message past its time, swept or not, on every tick until the prune
    // removed them (an hour for a short per-send TTL). "expires_at IS NOT
    // NULL" (true of every row) keeps it for the statements that test that
    // column, as for the index of lease ends below.
    index("deliveries_queued_expires_idx")
      .on(t.expiresAt)
      .where(sql`state = 'queued' AND expires_at IS NOT NULL`),
    // For the statements that test lease_expires_at, as the indexes of live
    // presences are for those that test their column: a probe of one
    // presence's leases is not planned as a walk of every lease through it.
    // Every leased delivery has a lease end.
    index("deliveries_leased_idx")
      .on(t.leaseExpiresAt)
      .where(sql`state = 'leased' AND lease_expires_at IS NOT NULL`),
    index("deliveries_lease_presence_idx")
      .on(t.leasePresenceId)
      .where(sql`state = 'leased'`),
    oneOf("deliveries_priority_check", "priority", PRIORITIES),
    oneOf("deliveries_state_check", "state", ["queued", "leased", "acked", "expired"]),
  ],
);

// Deliveries acknowledged: an ack moves its row here, kept for the settled
// retention with its message. Every index of deliveries but its two keys has
// the state in its condition, so an ack updated in place could never be a HOT
// update: it wrote a new row version and two index entries, and its dead
// version stayed in the live queue's pages and indexes until a vacuum. Moved,
// it writes one entry here and leaves deliveries holding only what is owed.
export const ackedDeliveries = pgTable(
  "acked_deliveries",
  {
    // The id it had in deliveries: the order of a message's recipients.
    id: bigint("id", { mode: "number" }).notNull(),
    messageId: uuid("message_id").notNull(),
    recipientMemberId: uuid("recipient_member_id").notNull(),
    priority: text("priority").notNull(),
    attempt: integer("attempt").notNull(),
    createdAt: tstz("created_at").notNull(),
    expiresAt: tstz("expires_at").notNull(),
    deliveredAt: tstz("delivered_at"),
    ackedAt: tstz("acked_at").notNull(),
  },
  (t) => [uniqueIndex("acked_deliveries_message_recipient_key").on(t.messageId, t.recipientMemberId)],
);

// Ephemeral sends on their way to recipients whose sockets another instance
// holds: the sending instance writes one row for each such instance and names
// it in a NOTIFY (which carries no message data); that instance deletes the
// row as it reads it and pushes it. Rows no instance took (its notice was
// lost, or it died) are pruned within seconds (store/ephemeral-relay.ts).
// The migration makes the table UNLOGGED, which drizzle cannot say: no WAL
// is written for it, and a crash empties it, as it may, nothing in it being
// stored.
export const ephemeralRelay = pgTable(
  "ephemeral_relay",
  {
    messageId: uuid("message_id").notNull(),
    instanceId: text("instance_id").notNull(),
    meshId: uuid("mesh_id").notNull(),
    senderPubkey: text("sender_pubkey").notNull(),
    targetSpec: text("target_spec").notNull(),
    priority: text("priority").notNull(),
    nonce: text("nonce").notNull(),
    ciphertext: text("ciphertext").notNull(),
    replyTo: uuid("reply_to"),
    // The push's createdAt: when the sending instance took the send.
    sentAt: tstz("sent_at").notNull(),
    // The database's clock, which the prune reads.
    createdAt: createdAt(),
    // The members it goes to on that instance, each with the presences that could take it: [{memberId, presenceIds}].
    recipients: jsonb("recipients").notNull(),
  },
  (t) => [primaryKey({ columns: [t.instanceId, t.messageId] }), index("ephemeral_relay_created_idx").on(t.createdAt)],
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

// A member whose deliveries go to an HTTP endpoint instead of its sockets.
// The lease makes one request in flight per member across instances.
export const webhooks = pgTable(
  "webhooks",
  {
    memberId: uuid("member_id")
      .primaryKey()
      .references(() => members.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    // Kept as given: the broker signs every request with it.
    secret: text("secret").notNull(),
    createdAt: createdAt(),
    failures: integer("failures").notNull().default(0),
    lastAttemptAt: tstz("last_attempt_at"),
    lastOutcome: text("last_outcome"),
    lastStatus: integer("last_status"),
    nextAttemptAt: tstz("next_attempt_at").notNull().defaultNow(),
    leaseHolder: text("lease_holder"),
    leaseExpiresAt: tstz("lease_expires_at"),
  },
  (t) => [
    index("webhooks_next_attempt_idx").on(t.nextAttemptAt),
    check("webhooks_last_outcome_check", sql`last_outcome IN ('ok', 'http_error', 'timeout', 'network')`),
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
  (t) => [
    index("pending_hook_statuses_member_idx").on(t.memberId),
    oneOf("pending_hook_statuses_status_check", "status", ["idle", "working"]),
  ],
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
