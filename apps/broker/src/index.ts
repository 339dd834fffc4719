// Entry point: configuration, logger, broker, signals.
import { DataDirLockedError } from "@switchboard/db";
import { startBroker, type Broker } from "./app.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { createLogger } from "./log.ts";

const SHUTDOWN_DEADLINE_MS = 9000;

let config: Config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(78);
}

const log = createLogger(config.LOG_LEVEL, { service: "switchboard-broker" });

let broker: Broker;
try {
  broker = await startBroker(config, log);
} catch (error) {
  if (error instanceof DataDirLockedError) {
    log.fatal({ code: error.code, holderPid: error.holder.pid }, error.message);
    process.stderr.write(`${error.message}\n`);
    process.exit(75);
  }
  log.fatal({ err: error }, "broker failed to start");
  process.exit(1);
}

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "shutdown signal");
  const deadline = setTimeout(() => {
    log.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, "shutdown deadline passed");
    process.exit(1);
  }, SHUTDOWN_DEADLINE_MS);
  try {
    await broker.stop();
    log.info("shutdown complete");
    process.exit(0);
  } catch (error) {
    log.error({ err: error }, "shutdown failed");
    process.exit(1);
  } finally {
    clearTimeout(deadline);
  }
}

process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("unhandledRejection", (reason) => log.error({ err: reason }, "unhandled rejection"));
process.on("uncaughtException", (error) => log.error({ err: error }, "uncaught exception"));
