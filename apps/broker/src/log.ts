// pino JSON on stderr, one object per line. Synchronous writes, so the last
// lines before an exit are never lost.
import pino from "pino";

export type Logger = pino.Logger;

// Fields of a Postgres error that may quote a row's values (ciphertexts
// among them): `detail` names the conflicting key or the failing row,
// `where` the context, `params` every parameter of the query.
const QUOTING_FIELDS = ["params", "parameters", "detail", "where", "internal_query", "internalQuery", "hint"];

// The broker must not write message data to its logs: those fields are
// dropped, and the parameters a driver appends to the message are cut.
export function errorWithoutParams(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const out = pino.stdSerializers.err(error) as unknown as Record<string, unknown>;
  if (typeof out.message === "string") out.message = out.message.split("\nparams:")[0];
  if (typeof out.stack === "string") out.stack = out.stack.split("\nparams:")[0];
  for (const field of QUOTING_FIELDS) delete out[field];
  if (error.cause !== undefined) out.cause = errorWithoutParams(error.cause);
  return out;
}

export function createLogger(level: pino.LevelWithSilent, base: Record<string, unknown>): Logger {
  return pino(
    { level, base, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err: errorWithoutParams } },
    pino.destination({ dest: 2, sync: true }),
  );
}
