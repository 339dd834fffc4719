// The load of the HTTP benchmarks, a process of its own:
// `bun bench/src/http-load.ts PLAN.json`. Each measurement has its socket
// counterpart in the same run, so figures can be stated as ratios:
//   http    — sends at a fixed rate over HTTP and over sockets (send→201/ack,
//             send→push); closed-loop throughput at the same concurrency;
//             request/reply round trips (?wait vs the SDK's socket request)
//   webhook — a queue drained to a local receiver vs the same queue drained
//             to sockets; send→webhook vs send→push latency at a fixed rate
// Prints the result as one JSON line on stdout. (Over 300 lines: each of the
// measurements above is one function here, beside its socket counterpart.)
import { HttpSender, SwitchboardClient } from "@switchboard/client";
import { now } from "./clock.ts";
import { BenchPeer, readStamp, type BenchIdentity, type Stamp } from "./peer.ts";
import { summarize, type Summary } from "./stats.ts";

export interface HttpPlanMember {
  id: string;
  identity: BenchIdentity;
  /** An API token, for members that send over HTTP. */
  token?: string;
}

export interface HttpPlan {
  kind: "http" | "webhook";
  baseUrl: string;
  wsUrl: string;
  mesh: string;
  adminToken: string;
  senders: HttpPlanMember[];
  receivers: HttpPlanMember[];
  /** Fixed-rate phases: msg/s and seconds, per path. */
  rate: number;
  seconds: number;
  /** Closed-loop phase: requests in flight at once, seconds. */
  concurrency: number;
  closedSeconds: number;
  /** Round trips per path (http). */
  roundTrips: number;
  /** Messages queued per receiver before the drain (webhook). */
  queuedPerReceiver: number;
  drainMs: number;
}

interface Counted {
  sent: number;
  accepted: number;
  delivered: number;
  duplicates: number;
  lost: number;
  errors: Record<string, number>;
}

export interface PathFigures {
  counts: Counted;
  perSecond: number;
  sendToAccept: Summary;
  sendToDelivery: Summary;
}

/** The ledger each stamp was written in: pushes, acks and webhook requests find their way back by id. */
const ledgerOf = new Map<string, Ledger>();

/** Which stamps were sent, answered and delivered, for one path of one phase. */
class Ledger {
  readonly sent = new Map<string, { t: number; acceptedAt?: number }>();
  readonly delivered = new Map<string, number>();
  readonly errors: Record<string, number> = {};
  duplicates = 0;
  acceptedCount = 0;
  private readonly answered = new Map<string, () => void>();

  stamp(): Stamp {
    const stamp: Stamp = { t: now(), id: crypto.randomUUID() };
    this.sent.set(stamp.id, { t: stamp.t });
    ledgerOf.set(stamp.id, this);
    return stamp;
  }

  /** Resolves once the send of this stamp is acked or refused. */
  answer(id: string): Promise<void> {
    return new Promise((resolve) => this.answered.set(id, resolve));
  }

  accepted(id: string): void {
    const s = this.sent.get(id);
    if (s && s.acceptedAt === undefined) {
      s.acceptedAt = now();
      this.acceptedCount++;
    }
    this.settle(id);
  }

  failed(code: string, id?: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    if (id !== undefined) this.settle(id);
  }

  private settle(id: string): void {
    this.answered.get(id)?.();
    this.answered.delete(id);
  }

  arrived(stamp: Stamp | null): void {
    if (!stamp || !this.sent.has(stamp.id)) return;
    if (this.delivered.has(stamp.id)) this.duplicates++;
    else this.delivered.set(stamp.id, now() - stamp.t);
  }

  done(): boolean {
    const failed = Object.values(this.errors).reduce((a, b) => a + b, 0);
    return this.acceptedCount + failed >= this.sent.size && this.delivered.size >= this.acceptedCount;
  }

  figures(seconds: number): PathFigures {
    const accepted = [...this.sent.values()].filter((s) => s.acceptedAt !== undefined);
    return {
      counts: {
        sent: this.sent.size,
        accepted: accepted.length,
        delivered: this.delivered.size,
        duplicates: this.duplicates,
        lost: Math.max(0, accepted.length - this.delivered.size),
        errors: this.errors,
      },
      perSecond: Math.round(accepted.length / seconds),
      sendToAccept: summarize(accepted.map((s) => s.acceptedAt! - s.t)),
      sendToDelivery: summarize([...this.delivered.values()]),
    };
  }
}

const encode = (stamp: Stamp) => Buffer.from(JSON.stringify(stamp)).toString("base64");

/** A socket send carrying the stamp (its id is also the send's idempotency key). */
function sendStamped(peer: BenchPeer, target: string, stamp: Stamp): void {
  peer.ws.send(JSON.stringify({ type: "send", targetSpec: target, priority: "next", nonce: "bench", ciphertext: encode(stamp), id: stamp.id }));
}


async function until(done: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !done() && Date.now() < end; ) await Bun.sleep(20);
}

/** Calls send() `rate` times a second for `seconds`, open loop: whatever the answers. */
async function openLoop(rate: number, seconds: number, send: (k: number) => void): Promise<void> {
  const start = performance.now();
  let k = 0;
  for (let elapsed = 0; elapsed < seconds * 1000; elapsed = performance.now() - start) {
    const owed = Math.floor((rate * elapsed) / 1000) - k;
    for (let i = 0; i < owed; i++, k++) send(k);
    await Bun.sleep(1);
  }
}

/** `concurrency` workers, each sending and awaiting its answer, for `seconds`. */
async function closedLoop(concurrency: number, seconds: number, sendOne: (worker: number) => Promise<void>): Promise<void> {
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (performance.now() < end) await sendOne(w);
    }),
  );
}

function httpPost(plan: HttpPlan, token: string, target: string, stamp: Stamp): Promise<Response> {
  return fetch(`${plan.baseUrl}/v1/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "idempotency-key": stamp.id, "content-type": "application/json" },
    body: JSON.stringify({ targetSpec: target, nonce: "bench", ciphertext: encode(stamp) }),
  });
}

const arrived = (stamp: Stamp | null) => (stamp ? ledgerOf.get(stamp.id)?.arrived(stamp) : undefined);

/** Socket peers for members, reporting pushes and acks to the ledger of each stamp. */
async function socketPeers(plan: HttpPlan, members: HttpPlanMember[]): Promise<BenchPeer[]> {
  return Promise.all(
    members.map((m) =>
      BenchPeer.connect(plan.wsUrl, plan.mesh, m.identity, {
        onPush: (_id, stamp) => arrived(stamp),
        onAck: (id) => ledgerOf.get(id)?.accepted(id),
        onError: (id, code) => (id === undefined ? undefined : ledgerOf.get(id)?.failed(code, id)),
      }),
    ),
  );
}

/** One HTTP send of a stamp, recorded in its ledger. */
async function postStamped(plan: HttpPlan, token: string, target: string, l: Ledger): Promise<void> {
  const stamp = l.stamp();
  try {
    const res = await httpPost(plan, token, target, stamp);
    if (res.status === 201) l.accepted(stamp.id);
    else l.failed(String(res.status), stamp.id);
    await res.body?.cancel();
  } catch {
    l.failed("network", stamp.id);
  }
}

async function runHttp(plan: HttpPlan): Promise<Record<string, unknown>> {
  const receivers = await socketPeers(plan, plan.receivers);
  const senders = await socketPeers(plan, plan.senders);
  const targetOf = (k: number) => plan.receivers[k % plan.receivers.length]!.identity.publicKey;
  const tokenOf = (k: number) => plan.senders[k % plan.senders.length]!.token!;

  // Fixed rate, sockets then HTTP.
  const fixed: Record<string, PathFigures> = {};
  for (const path of ["websocket", "http"] as const) {
    const l = new Ledger();
    await openLoop(plan.rate, plan.seconds, (k) => {
      if (path === "websocket") sendStamped(senders[k % senders.length]!, targetOf(k), l.stamp());
      else void postStamped(plan, tokenOf(k), targetOf(k), l);
    });
    await until(() => l.done(), plan.drainMs);
    fixed[path] = l.figures(plan.seconds);
  }

  // Closed loop at the same concurrency: how many sends a second each path takes.
  const closed: Record<string, PathFigures> = {};
  for (const path of ["websocket", "http"] as const) {
    const l = new Ledger();
    let k = 0;
    const started = performance.now();
    await closedLoop(plan.concurrency, plan.closedSeconds, async (w) => {
      const target = targetOf(k++);
      if (path === "http") return postStamped(plan, tokenOf(w), target, l);
      const stamp = l.stamp();
      const answered = l.answer(stamp.id);
      sendStamped(senders[w % senders.length]!, target, stamp);
      await answered;
    });
    const seconds = (performance.now() - started) / 1000;
    await until(() => l.done(), plan.drainMs);
    closed[path] = l.figures(seconds);
  }

  for (const p of [...receivers, ...senders]) p.close();
  return { fixed, closed, roundTrip: await roundTrips(plan) };
}

/** Request/reply: the SDK's socket request() against HttpSender.request() with ?wait, one at a time. */
async function roundTrips(plan: HttpPlan): Promise<Record<string, Summary>> {
  const responderMember = plan.receivers[0]!;
  const caller = plan.senders[0]!;
  const responder = await SwitchboardClient.connect({ url: plan.wsUrl, meshId: plan.mesh, secretKey: responderMember.identity.secretKey });
  responder.on("message", (m) => void responder.reply(m, { ok: true }));
  const socketCaller = await SwitchboardClient.connect({ url: plan.wsUrl, meshId: plan.mesh, secretKey: caller.identity.secretKey });
  const httpCaller = await HttpSender.create({ url: plan.baseUrl, token: caller.token!, secretKey: caller.identity.secretKey });
  const target = responderMember.identity.publicKey;
  const times: Record<string, number[]> = { websocket: [], http: [] };
  for (let i = 0; i < plan.roundTrips; i++) {
    let t = now();
    await socketCaller.request(target, { i });
    times.websocket!.push(now() - t);
    t = now();
    const answer = await httpCaller.request(target, { i }, { waitSeconds: 10 });
    if (answer.reply === null) throw new Error("no reply within the wait");
    times.http!.push(now() - t);
  }
  await socketCaller.close();
  await responder.close();
  return { websocket: summarize(times.websocket!), http: summarize(times.http!) };
}

async function runWebhook(plan: HttpPlan): Promise<Record<string, unknown>> {
  let requests = 0;
  const receiver = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: async (req) => {
      requests++;
      const batch = (await req.json()) as { messages: Array<{ ciphertext: string }> };
      for (const m of batch.messages) arrived(readStamp(m.ciphertext));
      return new Response(null, { status: 204 });
    },
  });
  const senders = await socketPeers(plan, plan.senders);
  // Half the receivers are webhook members, half socket members, in equal numbers.
  const half = plan.receivers.length / 2;
  const hooks = plan.receivers.slice(0, half);
  const sockets = plan.receivers.slice(half);
  const setWebhook = async (m: HttpPlanMember) => {
    const res = await fetch(`${plan.baseUrl}/v1/meshes/${plan.mesh}/members/${m.id}/webhook`, {
      method: "PUT",
      headers: { authorization: `Bearer ${plan.adminToken}` },
      body: JSON.stringify({ url: `http://127.0.0.1:${receiver.port}/hook`, secret: "bench-webhook-secret-0123456789" }),
    });
    if (res.status !== 200) throw new Error(`PUT webhook → ${res.status} ${await res.text()}`);
  };
  const sendTo = (l: Ledger, members: HttpPlanMember[], k: number) =>
    sendStamped(senders[k % senders.length]!, members[k % members.length]!.identity.publicKey, l.stamp());

  // Drain: the same queue, once to webhooks and once to sockets, from a standing start.
  const drain: Record<string, PathFigures> = {};
  const live: BenchPeer[] = [];
  for (const [path, members] of [
    ["webhook", hooks],
    ["websocket", sockets],
  ] as const) {
    const l = new Ledger();
    const total = plan.queuedPerReceiver * members.length;
    for (let k = 0; k < total; k++) {
      sendTo(l, members, k);
      if (k % 2000 === 1999) await until(() => l.acceptedCount >= k - 2000, 60_000);
    }
    await until(() => l.acceptedCount >= total, plan.drainMs);
    const started = performance.now();
    if (path === "webhook") await Promise.all(members.map(setWebhook));
    else live.push(...(await socketPeers(plan, members)));
    await until(() => l.delivered.size >= total, plan.drainMs);
    const seconds = (performance.now() - started) / 1000;
    drain[path] = { ...l.figures(seconds), perSecond: Math.round(l.delivered.size / seconds) };
  }

  // Live: sends at a fixed rate, alternately to webhook members and to socket members.
  const ledgers = { webhook: new Ledger(), websocket: new Ledger() };
  await openLoop(plan.rate, plan.seconds, (k) => {
    if (k % 2 === 0) sendTo(ledgers.webhook, hooks, k >> 1);
    else sendTo(ledgers.websocket, sockets, k >> 1);
  });
  await until(() => ledgers.webhook.done() && ledgers.websocket.done(), plan.drainMs);
  const fixed = { webhook: ledgers.webhook.figures(plan.seconds), websocket: ledgers.websocket.figures(plan.seconds) };

  for (const p of [...senders, ...live]) p.close();
  await receiver.stop(true);
  return { drain, fixed, webhookRequests: requests };
}

const plan = (await Bun.file(process.argv[2]!).json()) as HttpPlan;
const result = plan.kind === "http" ? await runHttp(plan) : await runWebhook(plan);
console.log(JSON.stringify({ event: "result", result }));
await Bun.sleep(200);
process.exit(0);
