// pino JSON on stderr, one object per line. Synchronous writes, so the last
// lines before an exit are never lost.
import pino from "pino";

export type Logger = pino.Logger;

/** Sees every line at warn or above, with the fields and message it was logged with. */
export type LogListener = (level: number, fields: Record<string, unknown>, msg: string) => void;

const WARN = 40;

// A failed query's error carries its parameters, ciphertexts among them: the
// broker must not write those to its logs, so they are cut from the message.
export function withoutQueryParams(text: string): string {
  return text.split("\nparams:")[0] ?? text;
}

export function errorWithoutParams(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const out = pino.stdSerializers.err(error) as unknown as Record<string, unknown>;
  if (typeof out.message === "string") out.message = withoutQueryParams(out.message);
  if (typeof out.stack === "string") out.stack = withoutQueryParams(out.stack);
  delete out.params;
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
  const hooks: pino.LoggerOptions["hooks"] = onWarnOrWorse && {
    logMethod(args, method, lineLevel) {
      if (lineLevel >= WARN) {
        const { fields, msg } = splitArgs(args);
        onWarnOrWorse(lineLevel, fields, msg);
      }
      method.apply(this, args);
    },
  };
  return pino(
    { level, base, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err: errorWithoutParams }, hooks },
    pino.destination({ dest: 2, sync: true }),
  );
}
