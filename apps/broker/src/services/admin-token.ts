// The bearer token of the admin API: ADMIN_TOKEN when set, else a secret the
// broker generates once and keeps in DATA_DIR, readable by its owner only.
import { randomBytes } from "node:crypto";
import { closeSync, constants, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { DataDirUnusableError } from "@switchboard/db";
import { BEARER_TOKEN } from "@switchboard/protocol";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";

const TOKEN_FILE = "admin-token";
// Same floor as ADMIN_TOKEN in config.ts.
const MIN_LENGTH = 16;

export class AdminTokenFileError extends Error {
  readonly code = "bad_admin_token_file";
}

// A token file someone else could read, or one that is a link to another
// file, is refused rather than used: the admin token grants everything.
function readTokenFile(path: string, log: Logger): string {
  const link = lstatSync(path);
  if (!link.isFile()) throw new AdminTokenFileError(`admin token file ${path} is not a regular file (a link?); remove it`);
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const stat = fstatSync(fd);
    if ((stat.mode & 0o077) !== 0) {
      throw new AdminTokenFileError(`admin token file ${path} is readable by others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    if (typeof process.getuid === "function" && stat.uid !== process.getuid()) {
      throw new AdminTokenFileError(`admin token file ${path} belongs to another user`);
    }
    const token = readFileSync(fd, "utf8").trim();
    if (token.length < MIN_LENGTH) {
      throw new AdminTokenFileError(`admin token file ${path} holds fewer than ${MIN_LENGTH} characters; fix or delete it`);
    }
    // Loaded, a token no header can carry would leave the admin API refusing every request.
    if (!BEARER_TOKEN.test(token)) {
      throw new AdminTokenFileError(`admin token file ${path} holds whitespace or a character outside printable ASCII, which no Authorization header carries as written; fix or delete it`);
    }
    log.info({ path }, "admin token loaded");
    return token;
  } finally {
    closeSync(fd);
  }
}

export function resolveAdminToken(config: Pick<Config, "ADMIN_TOKEN" | "DATA_DIR">, log: Logger): string {
  if (config.ADMIN_TOKEN !== undefined) return config.ADMIN_TOKEN;
  const unusable = (error: unknown) => new DataDirUnusableError(config.DATA_DIR, "the generated admin token (or set ADMIN_TOKEN)", error);
  try {
    mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw unusable(error);
  }
  const path = resolve(join(config.DATA_DIR, TOKEN_FILE));
  const token = randomBytes(32).toString("hex");
  // Brokers on DATABASE_URL may share a DATA_DIR and start together. The
  // complete file is hard-linked into place, which fails if one exists: no
  // broker ever reads a half-written token or overwrites one in use. The
  // draft's name is random, not the pid: brokers in containers are all pid 1,
  // and one must not write or remove another's draft.
  const draft = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  try {
    const fd = openSync(draft, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, `${token}\n`);
    } finally {
      closeSync(fd);
    }
    linkSync(draft, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return readTokenFile(path, log);
    throw unusable(error);
  } finally {
    rmSync(draft, { force: true });
  }
  log.info({ path }, "admin token generated");
  return token;
}
