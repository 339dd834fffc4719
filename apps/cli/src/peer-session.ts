// What the peer commands do over the SDK. Loaded only by those commands, so
// the admin and hook commands start without the SDK and its crypto.
import { SwitchboardClient, type Message, type SendResult } from "@switchboard/client";
import { MAX_SEND_ID_LENGTH, MAX_SESSION_ID_LENGTH, PUBKEY, sendFrame, prioritySchema, targetSpecSchema } from "@switchboard/protocol";
import { randomUUID } from "node:crypto";
import { AdminApi } from "./admin-api.ts";
import { operands, type Context } from "./command.ts";
import { audienceOption } from "./audience.ts";
import { requireMesh } from "./config.ts";
import { brokerError, sendFailed } from "./broker-errors.ts";
import { CliError, REQUEST_TIMEOUT_MS, UsageError } from "./errors.ts";
import { readKeyFile } from "./keyfile.ts";
import { isClosedPipe, oneLine, out, outJson, sentLine, shortKey } from "./output.ts";
import { brokerTarget } from "./target.ts";

const STATUSES = ["idle", "working", "dnd"] as const;
type Status = (typeof STATUSES)[number];

// Acks are manual for every command: a command acks only what it printed.
// Pushes that reach a one-shot send or status (it is a presence of the
// member like any other) stay owed, and go to the member's listener.
async function connect(ctx: Context, options: { sessionId: string; reconnect: boolean }): Promise<SwitchboardClient> {
  const config = ctx.config();
  const meshId = requireMesh(config);
  const audience = audienceOption(config);
  const key = await readKeyFile(config.keyFile);
  try {
    return await SwitchboardClient.connect({
      url: config.url,
      ...audience,
      meshId,
      secretKey: key.secretKey,
      sessionId: options.sessionId,
      // The hello is a request like any other: one bound for all of them.
      connectTimeoutMs: REQUEST_TIMEOUT_MS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      acks: "manual",
      ...(options.reconnect ? {} : { reconnect: false as const }),
    });
  } catch (error) {
    throw brokerError(`cannot connect to mesh ${meshId} at ${config.url}`, error);
  }
}

/**
 * A command gets a session of its own unless --session names one, as every
 * SDK client does, named `cli-…` so a peers listing tells a command's
 * presence from a Claude Code session's.
 */
function ownSession(ctx: Context): string {
  return ctx.args.boundedString("session", MAX_SESSION_ID_LENGTH) ?? `cli-${randomUUID()}`;
}

function payloadText(payload: unknown): string {
  return oneLine(typeof payload === "string" ? payload : (JSON.stringify(payload) ?? "null"));
}

/** How long a stop waits for the line under way: a stdout nobody reads would hold it forever. */
const STOP_GRACE_MS = 2000;

export async function runListen(ctx: Context): Promise<number> {
  operands(ctx, []);
  const limit = ctx.args.positiveInt("count");
  // Ctrl-C is taken from the start: the presence is visible to others a
  // moment before connect() returns here, and a signal then must still end
  // the listener cleanly. Every signal, not only the first, asks to stop.
  let onSignal = () => {
    signalled = true;
  };
  let signalled = false;
  const signal = () => onSignal();
  process.on("SIGINT", signal);
  process.on("SIGTERM", signal);
  // A message is acked once printed: one past --count, or arriving as the
  // listener stops, stays queued for the member's next listener.
  const sessionId = ownSession(ctx);
  const client = await connect(ctx, { sessionId, reconnect: true }).catch((error: unknown) => {
    process.off("SIGINT", signal);
    process.off("SIGTERM", signal);
    throw error;
  });
  const print = printer(ctx, client);

  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (finish = resolve));
  let stopping = false;
  /** Past the stop's grace: nothing more is printed or acked. */
  let stopped = false;
  let printed = 0;
  // Messages are printed one after the other, in arrival order.
  let chain: Promise<void> = Promise.resolve();

  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await Promise.race([chain, Bun.sleep(STOP_GRACE_MS)]);
    stopped = true;
    await client.close().catch(() => {});
    finish(code);
  };
  const stdoutFailed = (error: unknown): void => {
    if (isClosedPipe(error)) return void stop(0);
    process.stderr.write(`switchboard: cannot write to stdout: ${oneLine(error instanceof Error ? error.message : String(error))}\n`);
    void stop(1);
  };

  client.on("message", (m) => {
    chain = chain
      .then(async () => {
        if (stopping || (limit !== undefined && printed >= limit)) return;
        printed++;
        await print(m);
        // A line that took longer than the stop's grace is not counted as shown.
        if (stopped) return;
        client.ack(m.messageId);
        if (limit !== undefined && printed >= limit) void stop(0);
      })
      // Not written, so not acked: it goes to the member's next listener.
      .catch(stdoutFailed);
  });
  // Reported on stderr (the "error" event below) and settled: it will not open later either.
  client.on("unreadable", (m) => {
    chain = chain.then(() => {
      if (!stopping) client.ack(m.messageId);
    });
  });
  client.on("close", (info) => {
    if (info.willReconnect || stopping) return;
    // A replacement is another command of the same session (a status or send with its --session), not a fault of the broker's.
    const why = info.code === 4000 ? `: another connection of this member took its session id (${oneLine(sessionId)})` : "";
    process.stderr.write(`switchboard: connection closed by the broker: ${info.reason || "no reason"} (${info.code})${why}\n`);
    void stop(1);
  });
  // A message that does not open, say: worth a line, not the end of listening.
  client.on("error", (error) => {
    process.stderr.write(`switchboard: ${error.code}: ${oneLine(error.message)}\n`);
  });
  // Also emitted for a failed write: unhandled, it would end the process with a stack trace.
  process.stdout.on("error", stdoutFailed);
  onSignal = () => void stop(0);
  if (signalled) onSignal();
  try {
    return await finished;
  } finally {
    process.off("SIGINT", signal);
    process.off("SIGTERM", signal);
    process.stdout.off("error", stdoutFailed);
  }
}

/** Prints a message as one line (or one JSON value), the sender by name where one is known. */
function printer(ctx: Context, client: SwitchboardClient): (m: Message) => Promise<void> {
  // Sender names come from the live peer list, fetched again only for a key not
  // seen yet; a sender already gone (a one-shot `send`) is found through the
  // admin API when an admin token is configured.
  const names = new Map<string, string>();
  const config = ctx.config();
  const nameOf = async (pubkey: string): Promise<string | undefined> => {
    try {
      if (!names.has(pubkey)) {
        for (const peer of await client.listPeers()) names.set(peer.pubkey, peer.displayName);
      }
      if (!names.has(pubkey) && config.adminToken !== undefined) {
        const members = await new AdminApi(config.url, config.adminToken).listMembers(requireMesh(config));
        for (const member of members) names.set(member.pubkey, member.displayName);
      }
    } catch {
      // a name is a nicety; the key prefix will do
    }
    return names.get(pubkey);
  };

  return async (m) => {
    const senderName = await nameOf(m.senderPubkey);
    if (ctx.json) return outJson({ ...m, senderName: senderName ?? null });
    const sender = senderName !== undefined ? `${oneLine(senderName)} (${shortKey(m.senderPubkey)})` : shortKey(m.senderPubkey);
    const target =
      m.targetSpec === client.publicKey ? "me" : PUBKEY.test(m.targetSpec) ? shortKey(m.targetSpec) : m.targetSpec;
    // As the MCP server says it: only the broker vouches for a message sent in the clear.
    const clear = m.encrypted ? "" : " (unencrypted)";
    return out(`${sender} → ${target} [${m.priority}]${clear} ${payloadText(m.payload)}`);
  };
}

/**
 * A target as the broker takes it; anything else is a member's display name.
 * With an admin token every active member is asked, online or not, so a name
 * two of them share is refused as member revoke and token create refuse it.
 */
async function resolveTarget(ctx: Context, client: SwitchboardClient, target: string): Promise<string> {
  const spec = brokerTarget(target);
  if (spec !== undefined) return spec;
  const config = ctx.config();
  const mesh = requireMesh(config);
  const named =
    config.adminToken === undefined
      ? (await client.listPeers()).filter((p) => p.displayName === target)
      : (await new AdminApi(config.url, config.adminToken).listMembers(mesh)).filter((m) => m.displayName === target && m.revokedAt === null);
  const keys = [...new Set(named.map((n) => n.pubkey))];
  const [only, ...others] = keys;
  if (only !== undefined && others.length === 0) return only;
  if (only === undefined) {
    // Without an admin token only the peers online were asked: an offline member by that name is not found.
    const asked = config.adminToken === undefined ? `no peer online is named "${target}" (without an admin token only online peers are asked: give the member's pubkey, or an admin token)` : `no active member is named "${target}"`;
    throw new CliError(`${asked} (target: a 64-hex pubkey, *, #channel, tag:name or a member's name)`);
  }
  throw new CliError(`${keys.length} active members are named "${target}" in mesh ${mesh}; send to one of their pubkeys: ${keys.join(", ")}`);
}

async function readStdin(): Promise<string> {
  return (await new Response(Bun.stdin.stream()).text()).replace(/\n$/, "");
}

export async function runSend(ctx: Context): Promise<void> {
  if (ctx.operands.length < 2) operands(ctx, ["target", "text"]);
  const [target = "", ...words] = ctx.operands;
  const priority = ctx.args.oneOf("priority", prioritySchema.options);
  const ttlSeconds = ctx.args.positiveInt("ttl");
  const id = ctx.args.string("id");
  if (target === "") throw new UsageError("<target> is empty");
  if ((target.startsWith("#") || target.startsWith("tag:")) && !targetSpecSchema.safeParse(target).success) {
    throw new UsageError(`"${target}" is not a valid #channel or tag:name`);
  }
  const fromStdin = words.length === 1 && words[0] === "-";
  const text = fromStdin ? await readStdin() : words.join(" ");
  if (text === "") throw new UsageError(fromStdin ? "nothing to send: standard input was empty" : "<text> is empty");
  if (ctx.args.flag("http")) {
    // An HTTP send is no presence on the mesh: a session named for it would be ignored.
    if (ctx.args.string("session") !== undefined) throw new UsageError("--session cannot go with --http: a send over HTTP has no session");
    // Nor a hello to sign: given on the command line it would be ignored (from the environment or the config file it is for the other commands).
    if (ctx.args.string("audience") !== undefined) throw new UsageError("--audience cannot go with --http: a send over HTTP signs no hello");
    return (await import("./http-send.ts")).runHttpSend(ctx, target, text);
  }
  // Without --http the key file says who sends: a token given would be ignored.
  for (const option of ["wait", "token"]) {
    if (ctx.args.string(option) !== undefined) throw new UsageError(`--${option} needs --http`);
  }
  // Checked here, as over HTTP: the broker would refuse it only after the connect, as a send it could not read.
  if (id !== undefined && !sendFrame.shape.id.safeParse(id).success) throw new UsageError(`--id must be 1 to ${MAX_SEND_ID_LENGTH} characters`);

  const client = await connect(ctx, { sessionId: ownSession(ctx), reconnect: false });
  try {
    const resolved = await resolveTarget(ctx, client, target);
    let result: SendResult;
    try {
      result = await client.send(resolved, text, {
        ...(priority !== undefined ? { priority } : {}),
        ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
        ...(id !== undefined ? { id } : {}),
      });
    } catch (error) {
      throw sendFailed(error);
    }
    if (ctx.json) await outJson(result);
    else {
      const how = result.queued ? "queued" : "not queued";
      const dup = result.duplicate ? ", duplicate of an earlier send" : "";
      await out(sentLine(result, `${how}${dup}`));
    }
  } finally {
    await client.close().catch(() => {});
  }
}

export async function runStatus(ctx: Context): Promise<void> {
  const [wanted = ""] = operands(ctx, ["status"]);
  if (!(STATUSES as readonly string[]).includes(wanted)) {
    throw new UsageError(`<status> must be one of ${STATUSES.join(", ")}, not "${wanted}"`);
  }
  const client = await connect(ctx, { sessionId: ownSession(ctx), reconnect: false });
  try {
    let result: { status: string; statusSource: string };
    try {
      result = await client.setStatus(wanted as Status, "manual");
    } catch (error) {
      throw brokerError("set status failed", error);
    }
    if (ctx.json) await outJson(result);
    else await out(`status ${result.status} (source ${result.statusSource})`);
  } finally {
    await client.close().catch(() => {});
  }
}
