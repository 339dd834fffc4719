// Seeded hostile input against a running broker: session frames on an
// admitted connection, hellos on fresh ones, hook bodies and admin bodies
// over HTTP. Every input must be answered by a coded error (or its normal
// reply) or end its socket with a documented close code; the broker must
// stay up and leave no row outside the schema.
import {
  CLOSE_CODES,
  FRAME_ERROR_CODES,
  HELLO_ERROR_CODES,
  sessionFrame,
  type HelloFrame,
} from "@switchboard/protocol";
import { Fuzz } from "./fuzz.ts";
import { buildHello, type TestIdentity } from "./peer.ts";
import { RawWebSocket } from "./raw-socket.ts";

export interface FuzzTarget {
  baseUrl: string;
  wsUrl: string;
  adminToken: string;
  meshId: string;
  identity: TestIdentity;
  /** Another member of the mesh, for valid send targets. */
  otherPubkey: string;
  hookToken: string;
}

export interface FuzzSizes {
  seed: number;
  frames: number;
  hellos: number;
  hooks: number;
  adminBodies: number;
}

export interface FuzzReport {
  seed: number;
  frames: number;
  hellos: number;
  hooks: number;
  adminBodies: number;
  /** Inputs answered by a reply, an error with a known code, or a documented close. */
  answered: number;
  /** Inputs that got neither: must be 0. */
  unanswered: Array<{ kind: string; input: string; detail: string }>;
  closes: Record<string, number>;
  httpStatuses: Record<string, number>;
}

const KNOWN_CODES = new Set<string>([...FRAME_ERROR_CODES, ...HELLO_ERROR_CODES]);
const DOCUMENTED_CLOSES = new Set<number>([
  CLOSE_CODES.policy,
  CLOSE_CODES.tooLarge,
  CLOSE_CODES.tryAgainLater,
  CLOSE_CODES.replaced,
]);
const DOCUMENTED_HTTP = new Set([200, 201, 400, 401, 404, 405, 409, 413, 429]);

/** How long any one input may go unanswered: the run's length is bounded by it. */
const ANSWER_BOUND_MS = 30_000;

const clip = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}… (${text.length} chars)` : text);

function count(map: Record<string, number>, key: string | number): void {
  map[String(key)] = (map[String(key)] ?? 0) + 1;
}

/** The frames a fuzzed session frame starts from: one valid frame of each type. */
function templates(target: FuzzTarget): Array<Record<string, unknown>> {
  return [
    { type: "send", targetSpec: target.otherPubkey, nonce: "bm9uY2U=", ciphertext: "Y2lwaGVy", priority: "next" },
    { type: "send", targetSpec: "*", nonce: "bm9uY2U=", ciphertext: "Y2lwaGVy", ephemeral: true, id: "x" },
    { type: "client_ack", messageIds: [crypto.randomUUID()] },
    { type: "set_status", status: "working", source: "manual" },
    { type: "join", channel: "#fuzz" },
    { type: "leave", channel: "#fuzz" },
    { type: "list_peers" },
    { type: "ping" },
  ];
}

class Session {
  private ws: RawWebSocket | null = null;

  constructor(
    private readonly target: FuzzTarget,
    private readonly report: FuzzReport,
  ) {}

  async socket(): Promise<RawWebSocket> {
    if (this.ws && this.ws.close === null) return this.ws;
    this.ws?.destroy();
    const ws = await RawWebSocket.open(this.target.wsUrl);
    ws.sendJson(await buildHello({ identity: this.target.identity, meshId: this.target.meshId }));
    await ws.waitFor(() => ws.messages.find((m) => m.includes('"hello_ack"')), 15_000, "hello_ack");
    this.ws = ws;
    return ws;
  }

  /** Sends one input and waits for what answers it. */
  async send(text: string | Uint8Array, reqId: string | null, expectsReply: boolean): Promise<void> {
    const ws = await this.socket();
    const start = ws.messages.length;
    if (typeof text === "string") ws.sendText(text);
    else ws.sendBinary(text);
    // A ping right behind it: frames are handled in order, so its pong means
    // the input was handled (and answered, if it was going to be).
    const marker = `m-${crypto.randomUUID()}`;
    ws.sendJson({ type: "ping", reqId: marker });
    const outcome = await ws.waitFor(
      () => {
        if (ws.close) return "closed" as const;
        return ws.messages.slice(start).some((m) => m.includes(marker)) ? ("handled" as const) : undefined;
      },
      ANSWER_BOUND_MS,
      "the input to be handled",
    );
    const shown = clip(typeof text === "string" ? text : `<binary ${text.length} bytes>`);
    if (outcome === "closed") {
      count(this.report.closes, ws.close!.code);
      if (DOCUMENTED_CLOSES.has(ws.close!.code)) this.report.answered++;
      else this.report.unanswered.push({ kind: "frame", input: shown, detail: `closed ${ws.close!.code} ${ws.close!.reason}` });
      return;
    }
    const replies = ws.messages.slice(start).map((m) => JSON.parse(m) as Record<string, unknown>);
    const bad = replies.find((r) => r.type === "error" && !KNOWN_CODES.has(String(r.code)));
    if (bad) {
      this.report.unanswered.push({ kind: "frame", input: shown, detail: `unknown error code ${String(bad.code)}` });
      return;
    }
    if (expectsReply && reqId !== null && !replies.some((r) => r.reqId === reqId)) {
      // A frame the broker could not read its reqId from is answered without it.
      const anonymous = replies.some((r) => r.type === "error" && r.reqId === undefined);
      if (!anonymous) {
        this.report.unanswered.push({ kind: "frame", input: shown, detail: "no reply carried its reqId" });
        return;
      }
    }
    this.report.answered++;
  }

  close(): void {
    this.ws?.destroy();
  }
}

async function fuzzFrames(target: FuzzTarget, fuzz: Fuzz, n: number, report: FuzzReport): Promise<void> {
  const session = new Session(target, report);
  const bases = templates(target);
  for (let i = 0; i < n; i++) {
    const roll = fuzz.int(20);
    if (roll === 0) {
      await session.send(fuzz.garbage(), null, true);
    } else if (roll === 1) {
      await session.send(Buffer.from(JSON.stringify({ type: "ping", reqId: `b${i}` })), `b${i}`, true);
    } else {
      const reqId = `f${i}`;
      const frame = { ...fuzz.mutate({ ...fuzz.pick(bases) }), reqId };
      let text: string;
      try {
        text = JSON.stringify(frame);
      } catch {
        continue;
      }
      // A valid client_ack has no reply; every other frame does.
      const parsed = sessionFrame.safeParse(JSON.parse(text));
      const expectsReply = !(parsed.success && parsed.data.type === "client_ack");
      await session.send(text, reqId, expectsReply);
    }
  }
  session.close();
}

async function fuzzHellos(target: FuzzTarget, fuzz: Fuzz, n: number, report: FuzzReport): Promise<void> {
  for (let i = 0; i < n; i++) {
    const valid = (await buildHello({ identity: target.identity, meshId: target.meshId })) as unknown as HelloFrame;
    const frame = fuzz.int(10) === 0 ? fuzz.garbage() : JSON.stringify(fuzz.mutate(valid as unknown as Record<string, unknown>));
    const ws = await RawWebSocket.open(target.wsUrl);
    ws.sendText(frame);
    // An admitted hello (the mutation left it valid) is answered too; then it is closed by us.
    await ws.waitFor(() => (ws.close || ws.messages.some((m) => m.includes("hello_ack")) ? true : undefined), ANSWER_BOUND_MS, "the hello's answer");
    if (ws.close) {
      count(report.closes, ws.close.code);
      const error = ws.messages.map((m) => JSON.parse(m) as Record<string, unknown>).find((m) => m.type === "error");
      const codeOk = ws.close.code === CLOSE_CODES.tooLarge || (error !== undefined && KNOWN_CODES.has(String(error.code)));
      if (DOCUMENTED_CLOSES.has(ws.close.code) && codeOk) report.answered++;
      else report.unanswered.push({ kind: "hello", input: clip(frame), detail: `closed ${ws.close.code} ${ws.close.reason}` });
    } else {
      report.answered++;
    }
    ws.destroy();
  }
}

async function checkedPost(
  url: string,
  token: string,
  body: string,
  kind: string,
  report: FuzzReport,
  errorShape: (json: Record<string, unknown>) => boolean,
): Promise<void> {
  const post = async () => {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(ANSWER_BOUND_MS),
    });
    return { res, text: await res.text() };
  };
  const answered = await post().catch((error: unknown) => {
    if (error instanceof DOMException && error.name === "TimeoutError") return null;
    throw error;
  });
  if (answered === null) {
    report.unanswered.push({ kind, input: clip(body), detail: `no answer in ${ANSWER_BOUND_MS} ms` });
    return;
  }
  const { res, text } = answered;
  count(report.httpStatuses, res.status);
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = null;
  }
  const ok = DOCUMENTED_HTTP.has(res.status) && json !== null && (res.status < 400 || errorShape(json));
  if (ok) report.answered++;
  else report.unanswered.push({ kind, input: clip(body), detail: `${res.status} ${clip(text)}` });
}

export async function fuzzBroker(target: FuzzTarget, sizes: FuzzSizes): Promise<FuzzReport> {
  const fuzz = new Fuzz(sizes.seed);
  const report: FuzzReport = {
    seed: sizes.seed,
    frames: sizes.frames,
    hellos: sizes.hellos,
    hooks: sizes.hooks,
    adminBodies: sizes.adminBodies,
    answered: 0,
    unanswered: [],
    closes: {},
    httpStatuses: {},
  };
  await fuzzFrames(target, fuzz, sizes.frames, report);
  await fuzzHellos(target, fuzz, sizes.hellos, report);
  const hookError = (j: Record<string, unknown>) => j.ok === false && typeof j.error === "string" && /^[a-z_]+$/.test(j.error);
  const apiError = (j: Record<string, unknown>) => {
    const e = j.error as { code?: unknown } | undefined;
    return typeof e?.code === "string" && /^[a-z_]+$/.test(e.code);
  };
  const hookTemplate = { cwd: "/tmp/fuzz", status: "working", pid: 4242, session_id: "s", hook_event_name: "Stop" };
  for (let i = 0; i < sizes.hooks; i++) {
    const body = fuzz.int(10) === 0 ? fuzz.garbage() : JSON.stringify(fuzz.mutate(hookTemplate));
    await checkedPost(`${target.baseUrl}/hook/set-status`, target.hookToken, body, "hook", report, hookError);
  }
  const adminTemplates: Array<[string, Record<string, unknown>]> = [
    ["/v1/meshes", { slug: "fuzz-mesh", name: "Fuzz" }],
    [`/v1/meshes/${target.meshId}/members`, { pubkey: "a".repeat(64), displayName: "fuzz", tags: ["t"], role: "member" }],
    [`/v1/meshes/${target.meshId}/members/${target.otherPubkey}/tokens`, { kind: "hook" }],
  ];
  for (let i = 0; i < sizes.adminBodies; i++) {
    const [path, template] = fuzz.pick(adminTemplates);
    const body = fuzz.int(10) === 0 ? fuzz.garbage() : JSON.stringify(fuzz.mutate(template));
    await checkedPost(`${target.baseUrl}${path}`, target.adminToken, body, "admin", report, apiError);
  }
  return report;
}
