// pino JSON on stderr, one object per line. Synchronous writes, so the last
// lines before an exit are never lost.
import pino from "pino";

export type Logger = pino.Logger;

/** Sees every line at warn or above, with the fields and message it was logged with. */
export type LogListener = (level: number, fields: Record<string, unknown>, msg: string) => void;

const WARN = 40;

// Fields of an error that may quote a row's values (ciphertexts among
// them) or a secret: `detail` names the conflicting key or the failing row,
// `where` the context, `params` every parameter of the query; `input` is the
// text an invalid URL error quotes (a database URL's password with it).
const QUOTING_FIELDS = ["params", "parameters", "detail", "where", "internal_query", "internalQuery", "hint", "input"];

/** The parameters a driver appends to a failed query's message, cut off. */
export function withoutQueryParams(text: string): string {
  return text.split("\nparams:")[0] ?? text;
}

// The broker must not write message data to its logs: those fields are
// dropped, and the parameters a driver appends to the message are cut.
export function errorWithoutParams(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const out = pino.stdSerializers.err(error) as unknown as Record<string, unknown>;
  if (typeof out.message === "string") out.message = withoutQueryParams(out.message);
  if (typeof out.stack === "string") out.stack = withoutQueryParams(out.stack);
  for (const field of QUOTING_FIELDS) delete out[field];
  if (error.cause !== undefined) out.cause = errorWithoutParams(error.cause);
  return out;
}

// pino calls a log method as (fields, msg), (error, msg) or (msg).
function splitArgs(args: unknown[]): { fields: Record<string, unknown>; msg: string } {
  const [first, second] = args;
  if (typeof first === "string") return { fields: {}, msg: first };
  const fields = first instanceof Error ? { err: first } : ((first ?? {}) as Record<string, unknown>);
  return { fields, msg: typeof second === "string" ? second : "" };
}

export function createLogger(level: pino.LevelWithSilent, base: Record<string, unknown>, onWarnOrWorse?: LogListener): Logger {
  // pino wants an object here, not undefined, when nothing listens.
  const hooks: pino.LoggerOptions["hooks"] = onWarnOrWorse
    ? {
        logMethod(args, method, lineLevel) {
          if (lineLevel >= WARN) {
            const { fields, msg } = splitArgs(args);
            onWarnOrWorse(lineLevel, fields, msg);
          }
          method.apply(this, args);
        },
      }
    : {};
  return pino(
    { level, base, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err: errorWithoutParams }, hooks },
    pino.destination({ dest: 2, sync: true }),
  );
}
