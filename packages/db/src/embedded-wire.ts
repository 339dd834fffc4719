// What the broker's thread and the embedded database's thread (embedded-
// worker.ts) say to each other. Every request carries an id its reply
// repeats; a notification on a channel someone listens on comes unasked.
// Everything here crosses by structured clone.

export type Request =
  | { kind: "open"; pgdata: string }
  | { kind: "rows"; text: string; params: unknown[] }
  /** Opens a transaction: its reply is the transaction's id. */
  | { kind: "begin" }
  | { kind: "tx-rows"; tx: number; text: string; params: unknown[] }
  /** Commits or rolls back a transaction; its reply comes once that is done. */
  | { kind: "end"; tx: number; commit: boolean }
  /** Its reply is the subscription's id, which its notifications carry. */
  | { kind: "listen"; channel: string }
  | { kind: "unlisten"; subscription: number }
  | { kind: "close" };

export type Call = Request & { id: number };

/** An error as it crosses: its message and its fields of plain values (a SQLSTATE's `code` among them). */
export interface WireError {
  message: string;
  fields: Record<string, string | number | boolean | null>;
}

export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

export interface Notification {
  subscription: number;
  payload: string;
}

export type FromWorker = Reply | Notification;

const plain = (value: unknown): value is string | number | boolean | null =>
  value === null || ["string", "number", "boolean"].includes(typeof value);

/**
 * Keeps what callers read of a database error: its message and its plain
 * fields. PGlite's error also holds the statement's parameters and its
 * parsers (functions, which cannot cross), and may wrap the one with the
 * code in `cause`.
 */
export function toWire(error: unknown): WireError {
  if (!(error instanceof Error)) return { message: String(error), fields: {} };
  const fields: WireError["fields"] = {};
  for (const [key, value] of Object.entries(error)) if (plain(value)) fields[key] = value;
  const cause = (error as { cause?: unknown }).cause;
  if (fields.code === undefined && cause instanceof Error && plain((cause as { code?: unknown }).code)) {
    fields.code = (cause as { code?: unknown }).code as string;
  }
  return { message: error.message, fields };
}

/** The error again, on this side: its stack is the caller's. */
export function fromWire(wire: WireError): Error {
  return Object.assign(new Error(wire.message), wire.fields);
}
