// Runs the switchboard CLI as a real child process (`bun apps/cli/src/main.ts`)
// with a private HOME and only the environment a test gives it.
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CLI_ENTRY = join(import.meta.dir, "..", "..", "src", "main.ts");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to the child's environment (over HOME, PATH). */
  env?: Record<string, string>;
  stdin?: string;
  cwd?: string;
  timeoutMs?: number;
}

/** A throwaway HOME; the CLI reads ~/.config/switchboard and ~/.claude below it. */
export class CliHome {
  readonly dir = mkdtempSync(join(tmpdir(), "switchboard-cli-home-"));

  /** The child's environment: nothing of the runner's but PATH (no CLAUDE_* or SWITCHBOARD_* leaking in). */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: this.dir, ...extra };
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function spawnCli(home: CliHome, args: string[], options: CliOptions = {}): Subprocess<"pipe", "pipe", "pipe"> {
  return Bun.spawn(["bun", CLI_ENTRY, ...args], {
    env: home.env(options.env),
    cwd: options.cwd ?? home.dir,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
}

export async function runCli(home: CliHome, args: string[], options: CliOptions = {}): Promise<CliResult> {
  const proc = spawnCli(home, args, options);
  if (options.stdin !== undefined) proc.stdin.write(options.stdin);
  await proc.stdin.end();
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Runs and expects exit 0; returns stdout. */
export async function cliOk(home: CliHome, args: string[], options: CliOptions = {}): Promise<string> {
  const result = await runCli(home, args, options);
  if (result.code !== 0) {
    throw new Error(`switchboard ${args.join(" ")} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return result.stdout;
}

/** Lines of text without the trailing empty one. */
export function lines(text: string): string[] {
  return text.split("\n").filter((l, i, all) => !(l === "" && i === all.length - 1));
}

/** Polls check() until it returns a value other than undefined, or fails after timeoutMs. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await Bun.sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** Resolves with the first line the stream carries, and reads no further. */
export async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  return text.split("\n")[0] ?? "";
}
