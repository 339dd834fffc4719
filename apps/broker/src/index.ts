// Entry point: configuration, logger, broker, signals.
import { DataDirLockedError } from "@switchboard/db";
import { startBroker, type Broker } from "./app.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { createLogger } from "./log.ts";
import { AdminTokenFileError } from "./services/admin-token.ts";

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

// A bug the broker did not expect leaves it in an unknown state: exit, and
// let the supervisor start a clean one. Nothing acknowledged is lost (it is
// committed); what was in flight is redelivered.
function crash(event: string, error: unknown): never {
  log.fatal({ err: error }, event);
  process.exit(70);
}
process.on("unhandledRejection", (reason) => crash("unhandled rejection", reason));
process.on("uncaughtException", (error) => crash("uncaught exception", error));

let broker: Broker;
try {
  broker = await startBroker(config, log);
} catch (error) {
  if (error instanceof DataDirLockedError) {
    log.fatal({ code: error.code, holderPid: error.holder.pid }, error.message);
    process.stderr.write(`${error.message}\n`);
    process.exit(75);
  }
  if (error instanceof AdminTokenFileError) {
    log.fatal({ code: error.code }, error.message);
    process.stderr.write(`${error.message}\n`);
    process.exit(78);
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
