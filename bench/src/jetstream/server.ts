// A throwaway nats-server with JetStream on loopback, owned by the harness:
// a fresh store directory per run, stopped by its PID.
import { freePort, tempDir } from "@switchboard/testkit";
import type { Subprocess } from "bun";
import { rmSync } from "node:fs";
import { join } from "node:path";

export interface NatsServer {
  readonly url: string;
  readonly pid: number;
  readonly version: string;
  stop(): Promise<void>;
}

export function natsServerBinary(): string | null {
  return Bun.which("nats-server") ?? Bun.which("nats-server", { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
}

export function natsServerVersion(binary: string): string {
  const out = Bun.spawnSync([binary, "--version"]).stdout.toString();
  return out.match(/v?(\d+\.\d+\.\d+)/)?.[1] ?? "unknown";
}

/** `sync_interval: always` (fsync before every ack) exists from nats-server 2.10 on. */
export function supportsSyncAlways(version: string): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 2 || (major === 2 && minor >= 10);
}

export async function startNatsServer(options: { syncAlways: boolean }): Promise<NatsServer> {
  const binary = natsServerBinary();
  if (!binary) throw new Error("nats-server is not installed (Debian package nats-server)");
  const version = natsServerVersion(binary);
  if (options.syncAlways && !supportsSyncAlways(version)) {
    throw new Error(`nats-server ${version} has no sync_interval: always (2.10 and later)`);
  }
  const dir = tempDir("nats");
  const port = await freePort();
  const config = join(dir, "server.conf");
  await Bun.write(
    config,
    [
      `listen: "127.0.0.1:${port}"`,
      "jetstream {",
      `  store_dir: "${join(dir, "store")}"`,
      "  max_memory_store: 256MB",
      "  max_file_store: 8GB",
      ...(options.syncAlways ? ["  sync_interval: always"] : []),
      "}",
      "",
    ].join("\n"),
  );
  const proc: Subprocess<"ignore", "ignore", "pipe"> = Bun.spawn([binary, "-c", config], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  let log = "";
  // Read its log to the end, so a full pipe never blocks it.
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) log += decoder.decode(chunk, { stream: true });
  })();
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(dir, { recursive: true, force: true });
  };
  for (const until = Date.now() + 15_000; !log.includes("Server is ready"); await Bun.sleep(20)) {
    if (Date.now() > until || proc.exitCode !== null) {
      await stop();
      throw new Error(`nats-server did not start:\n${log}`);
    }
  }
  return { url: `nats://127.0.0.1:${port}`, pid: proc.pid, version, stop };
}
