// pino JSON on stderr, one object per line. Synchronous writes, so the last
// lines before an exit are never lost.
import pino from "pino";

export type Logger = pino.Logger;

// A failed query's error carries its parameters, ciphertexts among them: the
// broker must not write those to its logs, so they are cut from the message.
export function errorWithoutParams(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const out = pino.stdSerializers.err(error) as unknown as Record<string, unknown>;
  if (typeof out.message === "string") out.message = out.message.split("\nparams:")[0];
  if (typeof out.stack === "string") out.stack = out.stack.split("\nparams:")[0];
  delete out.params;
  if (error.cause !== undefined) out.cause = errorWithoutParams(error.cause);
  return out;
}

export function createLogger(level: pino.LevelWithSilent, base: Record<string, unknown>): Logger {
  return pino(
    { level, base, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err: errorWithoutParams } },
    pino.destination({ dest: 2, sync: true }),
  );
}
