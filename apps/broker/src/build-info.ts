import { hostname } from "node:os";
import pkg from "../package.json" with { type: "json" };

/** GIT_SHA when the image was built with it, else the checkout's HEAD, else "unknown". */
export function resolveGitSha(fromEnv: string | undefined): string {
  if (fromEnv) return fromEnv;
  try {
    const out = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: import.meta.dir, stderr: "ignore" });
    const sha = out.stdout.toString().trim();
    if (out.exitCode === 0 && sha) return sha;
  } catch {
    // git is not installed: fall through.
  }
  return "unknown";
}

export function newInstanceId(): string {
  return `${hostname()}-${process.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

export const VERSION: string = pkg.version;
