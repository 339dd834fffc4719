// What a lost database connection looks like, whichever query it hit: the
// codes postgres.js gives a closed or broken connection, the socket's own
// error where the socket failed rather than closed (postgres.js passes it on
// as it is), and the SQLSTATEs of a server that is shutting down, starting or
// unreachable.
const CONNECTION_LOST = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ENOTCONN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "57P01",
  "57P02",
  "57P03",
  "08000",
  "08003",
  "08006",
]);

/** The error's code, where either driver puts it (PGlite wraps its cause). */
export function errorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === "string" ? code : undefined;
}

/** Whether the error means the database could not be reached, rather than a bug or bad data. */
export function isConnectionLost(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && CONNECTION_LOST.has(code);
}

/**
 * Whether the database refused the statement for want of a resource: disk
 * space (53100), memory, connections (SQLSTATE class 53). Such a statement
 * did not commit.
 */
export function isOutOfResources(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && /^53[0-9A-Z]{3}$/.test(code);
}

/**
 * Whether the database refused the statement as read-only (25006): a hot
 * standby, a primary demoted by a failover, `default_transaction_read_only`.
 * Nothing it refused was written; a promotion or a reconnect to the primary
 * mends it.
 */
export const isReadOnly = (error: unknown): boolean => errorCode(error) === "25006";

/** Whether the database refused the statement for want of disk space. */
export const isDiskFull = (error: unknown): boolean => errorCode(error) === "53100";

// A connection that could not be opened: no statement of it reached the server.
const NEVER_CONNECTED = new Set(["ECONNREFUSED", "CONNECT_TIMEOUT", "57P03"]);

/**
 * Whether the statement certainly never reached the database (its connection
 * could not be opened). Any other lost connection may have come after the
 * statement committed.
 */
export function neverReachedDatabase(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && NEVER_CONNECTED.has(code);
}
