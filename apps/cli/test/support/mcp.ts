// A stand-in for Claude Code in tests: an MCP client from the SDK that spawns
// the registered `switchboard mcp` command over stdio, collects its
// notifications/claude/channel notifications and its stderr log lines, calls
// its tools, and runs the installed hook commands the way Claude Code does.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { CLI_ENTRY, type CliHome } from "./cli.ts";

export interface ChannelNote {
  content: string;
  meta: Record<string, string>;
}

export interface LogLine {
  msg?: string;
  [key: string]: unknown;
}

/** Items arriving over time, and waits for one that matches (no polling, no fixed sleeps). */
class Arrivals<T> {
  readonly items: T[] = [];
  private readonly waiters = new Set<() => void>();

  push(item: T): void {
    this.items.push(item);
    for (const wake of [...this.waiters]) wake();
  }

  wait(match: (item: T) => boolean, timeoutMs: number, what: string, from = 0): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.items.slice(from).find(match);
        if (hit === undefined) return;
        done();
        resolve(hit);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }
}

export interface Registered {
  command: string;
  args: string[];
}

/** The server `switchboard install` registered in a project's .mcp.json (or ~/.claude.json). */
export function registeredServer(mcpFile: string): Registered {
  const config = JSON.parse(readFileSync(mcpFile, "utf8")) as { mcpServers: Record<string, Registered & { type: string }> };
  const server = config.mcpServers.switchboard;
  if (!server || server.type !== "stdio") throw new Error(`no stdio server "switchboard" in ${mcpFile}`);
  return { command: server.command, args: server.args };
}

export interface SessionOptions {
  cwd: string;
  /** The whole environment of the server (the SDK adds PATH, HOME, … of this process under it). */
  env: Record<string, string>;
}

/** A member's key written into the home, readable by its owner alone, as `switchboard keygen` leaves one. */
export function keyFileFor(home: CliHome, identity: object, name = "alice.json"): string {
  const keyFile = home.path(name);
  writeFileSync(keyFile, JSON.stringify(identity), { mode: 0o600 });
  return keyFile;
}

/**
 * `switchboard mcp` on a key, started as Claude Code starts it, in the home
 * (no admin token anywhere unless `env` adds one); `args` follow --url,
 * --mesh and --key. Not yet connected.
 */
export function startMcp(
  home: CliHome,
  server: { url: string; mesh: string; keyFile: string; args?: string[]; env?: Record<string, string> },
): Promise<McpSession> {
  return McpSession.start(
    { command: "bun", args: [CLI_ENTRY, "mcp", "--url", server.url, "--mesh", server.mesh, "--key", server.keyFile, ...(server.args ?? [])] },
    { cwd: home.dir, env: home.env(server.env) },
  );
}

export class McpSession {
  readonly notes = new Arrivals<ChannelNote>();
  readonly logs = new Arrivals<LogLine>();
  private stderrText = "";

  private constructor(
    readonly client: Client,
    readonly transport: StdioClientTransport,
  ) {}

  static async start(server: Registered, options: SessionOptions): Promise<McpSession> {
    const transport = new StdioClientTransport({
      command: server.command,
      args: server.args,
      cwd: options.cwd,
      env: options.env,
      stderr: "pipe",
    });
    const client = new Client({ name: "claude-code-stand-in", version: "0.0.0" });
    const session = new McpSession(client, transport);
    client.fallbackNotificationHandler = async (n) => {
      if (n.method === "notifications/claude/channel") session.notes.push(n.params as unknown as ChannelNote);
    };
    // A PassThrough while stderr is "pipe", typed as the wider Stream.
    const stderr = transport.stderr as Readable | null;
    if (stderr) {
      stderr.on("data", (chunk: Buffer) => {
        session.stderrText += chunk.toString("utf8");
      });
      createInterface({ input: stderr }).on("line", (line) => {
        try {
          session.logs.push(JSON.parse(line) as LogLine);
        } catch {
          session.logs.push({ msg: line });
        }
      });
    }
    await client.connect(transport);
    return session;
  }

  get pid(): number {
    const pid = this.transport.pid;
    if (pid === null) throw new Error("the server is not running");
    return pid;
  }

  stderr(): string {
    return this.stderrText;
  }

  /** The server's presence is up (its "mcp connected" log line). */
  connected(timeoutMs = 15_000): Promise<LogLine> {
    return this.logs.wait((l) => l.msg === "mcp connected", timeoutMs, "mcp connected log line");
  }

  note(match: (n: ChannelNote) => boolean, what: string, timeoutMs = 15_000): Promise<ChannelNote> {
    return this.notes.wait(match, timeoutMs, `channel notification: ${what}`);
  }

  async call(name: string, args: Record<string, unknown> = {}): Promise<{ isError: boolean; data: Record<string, unknown>; text: string }> {
    const result = await this.client.callTool({ name, arguments: args });
    const content = result.content as Array<{ type: string; text?: string }>;
    return {
      isError: result.isError === true,
      data: (result.structuredContent ?? {}) as Record<string, unknown>,
      text: content.map((c) => c.text ?? "").join(""),
    };
  }

  /** A successful tool call's structured data. */
  async ok(name: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const r = await this.call(name, args);
    if (r.isError) throw new Error(`${name} failed: ${r.text}\n${this.stderrText}`);
    return r.data;
  }

  kill(signal: NodeJS.Signals): void {
    process.kill(this.pid, signal);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/** Runs an installed hook command as Claude Code does: `sh -c`, the hook input on stdin, this process as its parent. */
export async function runHook(command: string, input: object): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(["sh", "-c", command], {
    stdin: new TextEncoder().encode(JSON.stringify(input)),
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

type HookGroups = Record<string, Array<{ matcher?: string; hooks: Array<{ type: string; command: string; timeout?: number }> }>>;

/** The command installed for an event in a settings file. */
export function installedHook(settingsFile: string, event: string): string {
  const settings = JSON.parse(readFileSync(settingsFile, "utf8")) as { hooks?: HookGroups };
  const command = settings.hooks?.[event]?.flatMap((g) => g.hooks).find((h) => h.command.includes("# switchboard-hook"))?.command;
  if (command === undefined) throw new Error(`no switchboard hook for ${event} in ${settingsFile}`);
  return command;
}

export function projectFiles(projectDir: string) {
  return { mcp: join(projectDir, ".mcp.json"), settings: join(projectDir, ".claude", "settings.local.json") };
}
