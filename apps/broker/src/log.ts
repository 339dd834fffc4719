// pino JSON on stderr, one object per line. Synchronous writes, so the last
// lines before an exit are never lost.
import pino from "pino";

export type Logger = pino.Logger;

export function createLogger(level: pino.LevelWithSilent, base: Record<string, unknown>): Logger {
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: true }));
}
