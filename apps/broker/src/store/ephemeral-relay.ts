// The relay of ephemeral sends between instances (the unlogged table
// ephemeral_relay): a NOTIFY must carry no message data, so the sending
// instance writes the message for each instance holding recipients' sockets
// and notifies it of the row; that instance deletes the row as it reads it.
// Nothing here is stored for long: rows left behind are pruned in seconds.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { BUS_CHANNEL } from "./notify.ts";
import type { OwedMessage } from "./queue/types.ts";
import { isoTime, jsonParam, uuidArray } from "./sql.ts";

/** An ephemeral send's message, as its push carries it. */
export type EphemeralMessage = OwedMessage;

/** A member it goes to on another instance, and which of its presences there may take it. */
export interface RelayedRecipient {
  memberId: string;
  presenceIds: string[];
}

/** One instance's share of a send. */
export interface RelayTarget {
  instanceId: string;
  recipients: RelayedRecipient[];
}

/** A relayed message an instance took, with the recipients its presences are to push it to. */
export interface RelayedMessage extends EphemeralMessage {
  recipients: RelayedRecipient[];
}

/**
 * Writes the message for each instance, and in the same statement (it goes
 * out with the commit) notifies each of its row: `{"relayed":{"instance","messages":[id]}}`
 * (services/bus.ts). A row each: the message's ciphertext is written once for
 * each instance that holds some of its recipients.
 */
export async function relayEphemeral(db: Executor, message: EphemeralMessage, targets: RelayTarget[]): Promise<void> {
  if (targets.length === 0) return;
  const m = message;
  await db.rows(sql`
    WITH written AS (
      INSERT INTO ephemeral_relay (message_id, instance_id, mesh_id, sender_pubkey, target_spec, priority, nonce, ciphertext,
                                   reply_to, sent_at, recipients)
      SELECT ${m.messageId}::uuid, t."instanceId", ${m.meshId}::uuid, ${m.senderPubkey}, ${m.targetSpec}, ${m.priority}, ${m.nonce},
             ${m.ciphertext}, ${m.replyTo}::uuid, ${m.createdAt}::timestamptz, t.recipients
      FROM jsonb_to_recordset(${jsonParam(targets)}) AS t("instanceId" text, recipients jsonb)
      RETURNING instance_id, message_id
    )
    SELECT count(pg_notify(${BUS_CHANNEL},
             json_build_object('relayed', json_build_object('instance', instance_id, 'messages', json_build_array(message_id)))::text))::int AS n
    FROM written`);
}

/** Deletes and returns the rows of these messages written for this instance (those already taken or pruned are not). */
export async function takeRelayed(db: Executor, instanceId: string, messageIds: string[]): Promise<RelayedMessage[]> {
  if (messageIds.length === 0) return [];
  const rows = await db.rows<EphemeralMessage & { recipients: string }>(sql`
    WITH taken AS (
      DELETE FROM ephemeral_relay
      WHERE instance_id = ${instanceId} AND message_id = ANY (${uuidArray(messageIds)})
      RETURNING *
    )
    SELECT message_id AS "messageId", mesh_id AS "meshId", sender_pubkey AS "senderPubkey", target_spec AS "targetSpec",
           priority, nonce, ciphertext, ${isoTime("sent_at")} AS "createdAt", reply_to AS "replyTo", recipients::text AS recipients
    FROM taken`);
  return rows.map((r) => ({ ...r, recipients: JSON.parse(r.recipients) as RelayedRecipient[] }));
}

/**
 * Deletes the rows written more than `seconds` ago: those whose instance
 * never took them (its notice was lost, or it ended), so that the table
 * holds at most a few seconds of sends.
 */
export async function pruneRelayed(db: Executor, seconds: number): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH gone AS (
      DELETE FROM ephemeral_relay WHERE created_at < now() - make_interval(secs => ${seconds}) RETURNING 1
    )
    SELECT count(*)::int AS n FROM gone`);
  return rows[0]?.n ?? 0;
}
