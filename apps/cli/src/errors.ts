// The two ways a command fails: a usage error (exit 2) or anything else (exit 1).
// No SDK here (broker-errors.ts): `hook forward` (hook-entry.ts) loads this.

export class UsageError extends Error {}

export class CliError extends Error {}

/** How long a request to the broker may take, over HTTP or a socket, before the command fails. */
export const REQUEST_TIMEOUT_MS = 15_000;
