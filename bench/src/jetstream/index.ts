// `bun run bench jetstream`'s other half: a scenario's workload against NATS
// JetStream on this machine. The fair mapping of Switchboard's per-recipient
// queue: one file-backed work-queue stream with a subject per recipient, and
// one durable pull consumer per recipient filtered to its subject, acked
// explicitly — a message is stored once, waits in its recipient's queue until
// acked (then the work-queue stream removes it, as our ack settles the
// delivery row), is redelivered after the ack wait, FIFO per recipient.
import { tempDir } from "@switchboard/testkit";
import { AckPolicy, connect, DeliverPolicy, nanos, RetentionPolicy, StorageType } from "nats";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { runLoad } from "../load.ts";
import type { JetStreamSystem, LoadResult, Workload } from "../plan.ts";
import { Profiler, sampleProcess, type ProfileWindow } from "../probe.ts";
import { startNatsServer, supportsSyncAlways, type NatsServer } from "./server.ts";

const STREAM = "SWITCHBOARD";
const SUBJECTS = "sb";
/** The broker's push window per presence and its lease. */
const MAX_ACK_PENDING = 512;
const ACK_WAIT_MS = 30_000;
const DUPLICATE_WINDOW_MS = 120_000;

export type JetStreamVariant = "default" | "sync-always";

export interface JetStreamSettings {
  server: string;
  variant: JetStreamVariant;
  storage: string;
  mapping: string;
  /** When the stored message reaches the disk, relative to the PubAck. */
  fsync: string;
  /** What the PubAck the publisher waits for means. */
  ack: string;
  /** Whether the PubAck waits for fsync, as Switchboard's ack waits for the WAL flush. */
  ackAfterFsync: boolean;
}

export interface JetStreamReport {
  settings: JetStreamSettings;
  load: LoadResult;
  profile: ProfileWindow;
  /** Messages still in the stream once every ack is in: unacked work (0 when all was acked). */
  messagesLeft: number;
  serverRssBytes: number;
}

export function jetStreamSettings(version: string, variant: JetStreamVariant): JetStreamSettings {
  const fsync =
    variant === "sync-always"
      ? "fsync of the message block before each PubAck (sync_interval: always)"
      : supportsSyncAlways(version)
        ? "in the page cache at the PubAck; fsync on a timer (sync_interval, default 2 min)"
        : "written to the OS (write(2)) before the PubAck; fsync every 2 minutes (the stream store's fixed sync interval in 2.9)";
  return {
    server: `nats-server ${version}`,
    variant,
    storage: "file, one server, 1 replica",
    mapping:
      `one work-queue stream (${STREAM}, subjects ${SUBJECTS}.<recipient>); one durable pull consumer per recipient ` +
      `filtered to its subject, explicit acks, max_ack_pending ${MAX_ACK_PENDING}, ack_wait ${ACK_WAIT_MS / 1000} s; ` +
      `publish with msgID (de-duplication window ${DUPLICATE_WINDOW_MS / 1000} s)`,
    fsync,
    ack: "PubAck: the message is stored in the stream (accepted by its one server); it survives a crash of the server process" +
      (variant === "sync-always" ? " and of the machine" : ", not a crash of the machine within the sync interval"),
    ackAfterFsync: variant === "sync-always",
  };
}

async function createQueues(url: string, peers: string[]): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({
      name: STREAM,
      subjects: [`${SUBJECTS}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Workqueue,
      num_replicas: 1,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    });
    for (const address of peers) {
      await jsm.consumers.add(STREAM, {
        durable_name: address,
        filter_subject: `${SUBJECTS}.${address}`,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(ACK_WAIT_MS),
        max_ack_pending: MAX_ACK_PENDING,
      });
    }
  } finally {
    await nc.close();
  }
}

/** Messages left in the stream once the last acks have landed (at most 30 s). */
async function messagesLeft(url: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await nc.jetstreamManager();
    let left = Number.NaN;
    for (const until = Date.now() + 30_000; Date.now() < until; await Bun.sleep(200)) {
      left = (await jsm.streams.info(STREAM)).state.messages;
      if (left === 0) break;
    }
    return left;
  } finally {
    await nc.close();
  }
}

export async function runJetStream(options: { workload: Workload; peers: number; variant: JetStreamVariant }): Promise<JetStreamReport> {
  if (options.workload.kind !== "rate" || options.workload.target !== "direct") {
    throw new Error("the JetStream comparison runs direct messages at a rate (the latency and throughput scenarios)");
  }
  const server: NatsServer = await startNatsServer({ syncAlways: options.variant === "sync-always" });
  const dir = tempDir("jetstream");
  const profiler = new Profiler(null);
  profiler.track("nats-server", server.pid);
  try {
    // Addresses as long as a Switchboard pubkey, so subjects carry as many bytes as our target specs.
    const peers = Array.from({ length: options.peers }, () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex"));
    await createQueues(server.url, peers);
    const system: JetStreamSystem = { kind: "jetstream", url: server.url, stream: STREAM, subjectPrefix: SUBJECTS, peers };
    profiler.start();
    const load = await runLoad({ ...options.workload, system }, join(dir, "plan.json"), {
      onSpawn: (pid) => profiler.track("loadgen", pid),
    });
    const serverRssBytes = sampleProcess(server.pid).rssBytes;
    await profiler.stop();
    return {
      settings: jetStreamSettings(server.version, options.variant),
      load,
      profile: profiler.window(load.startedAt, load.endedAt),
      messagesLeft: await messagesLeft(server.url),
      serverRssBytes,
    };
  } finally {
    await profiler.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
