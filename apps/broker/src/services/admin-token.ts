// The bearer token of the admin API: ADMIN_TOKEN when set, else a secret the
// broker generates once and keeps in DATA_DIR, readable by its owner only.
import { randomBytes } from "node:crypto";
import { chmodSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";

const TOKEN_FILE = "admin-token";
// Same floor as ADMIN_TOKEN in config.ts.
const MIN_LENGTH = 16;

function readTokenFile(path: string, log: Logger): string {
  const token = readFileSync(path, "utf8").trim();
  if (token.length < MIN_LENGTH) {
    throw new Error(`admin token file ${path} holds fewer than ${MIN_LENGTH} characters; fix or delete it`);
  }
  if ((statSync(path).mode & 0o077) !== 0) log.warn({ path }, "admin token file is readable by others");
  log.info({ path }, "admin token loaded");
  return token;
}

export function resolveAdminToken(config: Pick<Config, "ADMIN_TOKEN" | "DATA_DIR">, log: Logger): string {
  if (config.ADMIN_TOKEN !== undefined) return config.ADMIN_TOKEN;
  mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
  const path = resolve(join(config.DATA_DIR, TOKEN_FILE));
  const token = randomBytes(32).toString("hex");
  // Brokers on DATABASE_URL may share a DATA_DIR and start together. The
  // complete file is hard-linked into place, which fails if one exists: no
  // broker ever reads a half-written token or overwrites one in use.
  const draft = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(draft, `${token}\n`, { mode: 0o600 });
    // The creation mode is filtered by the umask; make 0600 exact.
    chmodSync(draft, 0o600);
    linkSync(draft, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return readTokenFile(path, log);
    throw error;
  } finally {
    rmSync(draft, { force: true });
  }
  log.info({ path }, "admin token generated");
  return token;
}
