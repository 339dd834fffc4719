// The load generator, a process of its own: `bun bench/src/loadgen.ts PLAN.json`.
// Prints {"event":"connected"} once its peers are in, then the result as one
// JSON line on stdout.
import { JetStreamPeer } from "./jetstream/peer.ts";
import { now } from "./clock.ts";
import { BenchPeer, type LoadPeer, type PeerHooks } from "./peer.ts";
import type { ClosedWorkload, Counts, HeldWorkload, LoadResult, Plan, RateWorkload, StepResult, System } from "./plan.ts";
import { summarize } from "./stats.ts";

interface Sent {
  t: number;
  step: number;
  ackAt?: number;
  expected?: number;
  /** Index of the sending peer (the closed loop sends again from it). */
  from?: number;
}

class Tracker implements PeerHooks {
  readonly sent = new Map<string, Sent>();
  readonly byMessage = new Map<string, string>();
  readonly pushes = new Map<string, Set<string>>();
  readonly pushLatency: Array<{ step: number; ms: number }> = [];
  readonly errors: Record<string, number> = {};
  duplicates = 0;
  delivered = 0;
  /** Called on the first push of a message to a peer, with its send. */
  onDelivered: ((sent: Sent) => void) | null = null;
  private current = "";

  as(peerKey: string): PeerHooks {
    return {
      onPush: (messageId, stamp) => {
        this.current = peerKey;
        this.onPush(messageId, stamp);
      },
      onAck: (id, messageId, duplicate, at) => this.onAck(id, messageId, duplicate, at),
      onError: (id, code) => this.onError(id, code),
    };
  }

  onPush(messageId: string, stamp: { t: number; id: string } | null): void {
    let seen = this.pushes.get(messageId);
    if (!seen) this.pushes.set(messageId, (seen = new Set()));
    if (seen.has(this.current)) {
      this.duplicates++;
      return;
    }
    seen.add(this.current);
    this.delivered++;
    const s = stamp ? this.sent.get(stamp.id) : undefined;
    if (stamp && s) {
      this.pushLatency.push({ step: s.step, ms: now() - stamp.t });
      this.onDelivered?.(s);
    }
  }

  onAck(id: string, messageId: string | null, _duplicate: boolean, at: number): void {
    const s = this.sent.get(id);
    if (!s || s.ackAt !== undefined) return;
    s.ackAt = at;
    if (messageId) this.byMessage.set(messageId, id);
  }

  onError(_id: string | undefined, code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  counts(recipientsOf: (s: Sent) => number): Counts {
    let acked = 0;
    let expected = 0;
    for (const s of this.sent.values()) {
      if (s.ackAt === undefined) continue;
      acked++;
      expected += recipientsOf(s);
    }
    return {
      sent: this.sent.size,
      acked,
      errors: this.errors,
      expectedDeliveries: expected,
      delivered: this.delivered,
      duplicates: this.duplicates,
      lost: Math.max(0, expected - this.delivered),
    };
  }
}

async function connectAll(system: System, tracker: Tracker, concurrency: number): Promise<LoadPeer[][]> {
  if (system.kind === "jetstream") {
    const peers = await Promise.all(
      system.peers.map((address) => JetStreamPeer.connect(system.url, system.stream, system.subjectPrefix, address, tracker.as(address))),
    );
    return [peers];
  }
  // Peers of different meshes arrive interleaved, as independent agents would.
  const jobs = system.meshes
    .flatMap((mesh, m) => mesh.members.map((identity, i) => ({ mesh, m, identity, i })))
    .sort((a, b) => a.i - b.i || a.m - b.m);
  const peers: BenchPeer[][] = system.meshes.map(() => []);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      const url = system.urls[(job.m * 131 + job.i) % system.urls.length]!;
      peers[job.m]![job.i] = await BenchPeer.connect(url, job.mesh.slug, job.identity, tracker.as(`${job.m}:${job.i}`));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  return peers;
}

const waitUntil = async (done: () => boolean, ms: number) => {
  const until = Date.now() + ms;
  while (!done() && Date.now() < until) await Bun.sleep(20);
};

function stepSummary(tracker: Tracker, step: number, rate: number, startedAt: number, endedAt: number): StepResult {
  const sent = [...tracker.sent.values()].filter((s) => s.step === step);
  const acked = sent.filter((s) => s.ackAt !== undefined);
  const pushed = tracker.pushLatency.filter((p) => p.step === step).map((p) => p.ms);
  return {
    rate,
    startedAt,
    endedAt,
    sent: sent.length,
    acked: acked.length,
    sendToAck: summarize(acked.map((s) => s.ackAt! - s.t)),
    sendToPush: summarize(pushed),
    lost: Math.max(0, acked.reduce((n, s) => n + (s.expected ?? 1), 0) - pushed.length),
  };
}

/** The k-th message of sender s goes to every other member in turn, never to the sender itself. */
const recipientOf = (s: number, k: number, n: number) => (s + 1 + (k % (n - 1))) % n;

const drained = (tracker: Tracker) => () => {
  const c = tracker.counts((s) => s.expected ?? 1);
  return c.acked + Object.values(c.errors).reduce((a, b) => a + b, 0) >= c.sent && c.lost === 0;
};

async function runRate(plan: RateWorkload, tracker: Tracker, members: LoadPeer[]): Promise<Partial<LoadResult>> {
  const recipients = plan.target === "broadcast" ? members.length - 1 : 1;
  const steps: StepResult[] = [];
  let highest = 0;
  let k = 0;
  for (const [index, step] of plan.steps.entries()) {
    const startedAt = now();
    const start = performance.now();
    const first = k;
    // Open loop: every millisecond, send what the rate owes by now, whatever the answers.
    for (let elapsed = 0; elapsed < step.seconds * 1000; elapsed = performance.now() - start) {
      const owed = Math.floor((step.rate * elapsed) / 1000) - (k - first);
      for (let i = 0; i < owed; i++, k++) {
        const n = members.length;
        const s = k % n;
        const target = plan.target === "broadcast" ? "*" : members[recipientOf(s, Math.floor(k / n), n)]!.address;
        const stamp = members[s]!.send(target);
        tracker.sent.set(stamp.id, { t: stamp.t, step: index, expected: recipients });
      }
      await Bun.sleep(1);
    }
    const endedAt = now();
    if (plan.stopAboveP99Ms === undefined) continue;
    // The step's last messages arrive before it is summed up: up to 1.5 s
    // for a step the system did not keep up with, no longer than it takes.
    await waitUntil(drained(tracker), 1500);
    const summary = stepSummary(tracker, index, step.rate, startedAt, endedAt);
    steps.push(summary);
    console.error(JSON.stringify({ event: "step", ...summary }));
    if (summary.sendToPush.p99 > plan.stopAboveP99Ms || summary.lost > 0 || summary.acked < summary.sent) break;
    highest = step.rate;
  }
  await waitUntil(drained(tracker), plan.drainMs);
  return { steps: plan.stopAboveP99Ms === undefined ? undefined : steps, highestSustainedRate: highest };
}

async function runClosed(plan: ClosedWorkload, tracker: Tracker, members: LoadPeer[]): Promise<Partial<LoadResult>> {
  const n = members.length;
  const count = members.map(() => 0);
  const sendFrom = (s: number) => {
    const stamp = members[s]!.send(members[recipientOf(s, count[s]!++, n)]!.address);
    tracker.sent.set(stamp.id, { t: stamp.t, step: 0, expected: 1, from: s });
  };
  let open = true;
  tracker.onDelivered = (sent) => {
    if (open && sent.from !== undefined) sendFrom(sent.from);
  };
  const start = performance.now();
  for (let w = 0; w < plan.window; w++) for (let s = 0; s < n; s++) sendFrom(s);
  await Bun.sleep(plan.seconds * 1000);
  open = false;
  const seconds = (performance.now() - start) / 1000;
  const delivered = tracker.delivered;
  await waitUntil(drained(tracker), plan.drainMs);
  return { closed: { window: plan.window, seconds, messagesPerSecond: delivered / seconds } };
}

async function runHeld(plan: HeldWorkload, tracker: Tracker, members: BenchPeer[]): Promise<Partial<LoadResult>> {
  const senders = members.slice(0, members.length / 2);
  const receivers = members.slice(members.length / 2);
  for (const r of receivers) r.setStatus("working");
  await Bun.sleep(500);
  for (let k = 0; k < plan.messages; k++) {
    const stamp = senders[k % senders.length]!.send(receivers[k % receivers.length]!.address, "next");
    tracker.sent.set(stamp.id, { t: stamp.t, step: 0, expected: 1 });
    if (k % 2000 === 1999) await waitUntil(() => tracker.counts(() => 1).acked >= k - 4000, 60_000);
  }
  await waitUntil(() => tracker.counts(() => 1).acked === plan.messages, plan.drainMs);
  const before = tracker.delivered;
  const start = performance.now();
  for (const r of receivers) r.setStatus("idle");
  await waitUntil(() => tracker.delivered - before >= plan.messages, plan.drainMs);
  return { held: { messages: plan.messages, flushSeconds: (performance.now() - start) / 1000 } };
}

async function main(): Promise<void> {
  const plan = (await Bun.file(process.argv[2]!).json()) as Plan;
  const tracker = new Tracker();
  const connectStartedAt = now();
  const connectStart = performance.now();
  const peers = await connectAll(plan.system, tracker, plan.kind === "connect" ? plan.concurrency : 50);
  const connectSeconds = (performance.now() - connectStart) / 1000;
  console.log(JSON.stringify({ event: "connected", seconds: connectSeconds }));
  const startedAt = now();
  const start = performance.now();
  let extra: Partial<LoadResult> = {};
  if (plan.kind === "rate") extra = await runRate(plan, tracker, peers.flat());
  else if (plan.kind === "closed") extra = await runClosed(plan, tracker, peers.flat());
  else if (plan.kind === "held") {
    const members = peers[0]!;
    if (!members.every((p) => p instanceof BenchPeer)) throw new Error("the held workload needs Switchboard peers (statuses)");
    extra = await runHeld(plan, tracker, members);
  } else await Bun.sleep(plan.holdMs);
  const seconds = (performance.now() - start) / 1000;
  const counts = tracker.counts((s) => s.expected ?? 1);
  const acked = [...tracker.sent.values()].filter((s) => s.ackAt !== undefined);
  const result: LoadResult = {
    kind: plan.kind,
    startedAt,
    endedAt: now(),
    seconds,
    counts,
    throughput: { sendsPerSecond: counts.acked / seconds, deliveriesPerSecond: counts.delivered / seconds },
    sendToAck: summarize(acked.map((s) => s.ackAt! - s.t)),
    sendToPush: summarize(tracker.pushLatency.map((p) => p.ms)),
    connect: { peers: peers.flat().length, seconds: connectSeconds, startedAt: connectStartedAt },
    ...extra,
  };
  for (const p of peers.flat()) p.close();
  console.log(JSON.stringify({ event: "result", result }));
  await Bun.sleep(200);
  process.exit(0);
}

await main();
