// A real broker process for tests: started with `bun`, its JSON log read
// line by line from stderr, stopped by its PID.
import type { Subprocess } from "bun";
import { join } from "node:path";

export const REPO_ROOT = join(import.meta.dir, "..", "..", "..");
const ENTRY = join(REPO_ROOT, "apps", "broker", "src", "index.ts");

export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface BrokerProcess {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  readonly wsUrl: string;
  readonly logs: LogLine[];
  readonly stderrText: () => string;
  readonly exited: Promise<number>;
  /** The exit code once the process has ended; null while it runs. */
  readonly exitCode: number | null;
  waitForLog(msg: string, timeoutMs?: number, predicate?: (line: LogLine) => boolean): Promise<LogLine>;
  kill(signal?: NodeJS.Signals): void;
  stop(): Promise<number>;
}

const INHERITED = ["PATH", "HOME", "TMPDIR", "LANG", "USER"];

/** Environment of a broker child: only what it is given, never the runner's DATABASE_URL. */
export function brokerEnv(env: Record<string, string>): Record<string, string> {
  const base: Record<string, string> = {};
  for (const key of INHERITED) {
    const value = process.env[key];
    if (value !== undefined) base[key] = value;
  }
  return { ...base, BROKER_PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", NODE_ENV: "test", ...env };
}

export interface SpawnOptions {
  /** The process's limit on open files (`ulimit -n`), as a container's may be. */
  fileLimit?: number;
}

export function spawnRaw(env: Record<string, string>, options: SpawnOptions = {}): Subprocess<"ignore", "pipe", "pipe"> {
  const command = options.fileLimit === undefined ? ["bun", ENTRY] : ["bash", "-c", `ulimit -n ${options.fileLimit} && exec bun "$0"`, ENTRY];
  return Bun.spawn(command, { env: brokerEnv(env), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

/**
 * A broker's stderr read as its log: `lines` fills as they come (a line
 * that is not JSON, such as a runtime's own message, is kept as its `msg`),
 * `heard` is called with each chunk's text once its lines are in, and
 * `done` settles when the stream ends.
 */
export function readLog(stream: ReadableStream<Uint8Array>, heard: (text: string) => void = () => {}): { lines: LogLine[]; done: Promise<void> } {
  const lines: LogLine[] = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          lines.push(JSON.parse(line) as LogLine);
        } catch {
          lines.push({ msg: line });
        }
      }
      heard(text);
    }
  })();
  return { lines, done };
}

export async function spawnBroker(env: Record<string, string>, options: SpawnOptions & { startTimeoutMs?: number } = {}): Promise<BrokerProcess> {
  const proc = spawnRaw(env, options);
  let raw = "";
  const waiters = new Set<() => void>();
  const wakeAll = () => {
    for (const wake of waiters) wake();
  };
  const { lines: logs, done } = readLog(proc.stderr, (text) => {
    raw += text;
    wakeAll();
  });
  void done.then(wakeAll);
  void new Response(proc.stdout).text();

  let exitCode: number | null = null;
  const exited = proc.exited.then((code) => {
    exitCode = code;
    for (const wake of waiters) wake();
    return code;
  });

  const waitForLog = (msg: string, timeoutMs = 15_000, predicate: (l: LogLine) => boolean = () => true) =>
    new Promise<LogLine>((resolve, reject) => {
      const check = () => {
        const hit = logs.find((l) => l.msg === msg && predicate(l));
        if (hit) {
          cleanup();
          resolve(hit);
        } else if (exitCode !== null) {
          cleanup();
          reject(new Error(`broker exited before logging "${msg}":\n${raw}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no "${msg}" log within ${timeoutMs} ms:\n${raw}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  // Generous: on a machine busy with other suites an embedded start (its
  // database compiled and opened in process) has taken more than 30 s.
  let listening: LogLine;
  try {
    listening = await waitForLog("broker listening", options.startTimeoutMs ?? 60_000);
  } catch (error) {
    // Nobody holds a broker whose start failed: it must not outlive it.
    proc.kill("SIGKILL");
    await exited;
    throw error;
  }
  const port = Number(listening.port);
  return {
    pid: proc.pid,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    logs,
    stderrText: () => raw,
    exited,
    get exitCode() {
      return exitCode;
    },
    waitForLog,
    kill: (signal: NodeJS.Signals = "SIGTERM") => {
      if (exitCode === null) proc.kill(signal);
    },
    async stop() {
      if (exitCode === null) proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 12_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
