// The MCP server's log: pino JSON on stderr (stdout is the MCP stream), one
// object per line, written synchronously so the last lines before an exit stay.
import pino from "pino";

export type Logger = pino.Logger;

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export function createLogger(env: Record<string, string | undefined> = process.env): Logger {
  const wanted = env.LOG_LEVEL;
  const level = LEVELS.find((l) => l === wanted) ?? "info";
  return pino(
    { level, base: { component: "switchboard-mcp", pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 2, sync: true }),
  );
}
