// `switchboard send --http`: a send over the HTTP messaging API with an API
// token instead of a socket; with --wait S it waits for the reply. A key
// file named for it seals and opens the envelopes; without one the message
// goes in the clear.
import { HttpSender, type HttpRequestResult, type HttpSendResult } from "@switchboard/client";
import { IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_WAIT_SECONDS, prioritySchema } from "@switchboard/protocol";
import { AdminApi } from "./admin-api.ts";
import type { Context } from "./command.ts";
import { headerToken, httpBase, requireMesh, type Config } from "./config.ts";
import { sendFailed } from "./broker-errors.ts";
import { CliError, REQUEST_TIMEOUT_MS, UsageError } from "./errors.ts";
import { readKeyFile } from "./keyfile.ts";
import { oneLine, out, outJson, sentLine, shortKey } from "./output.ts";
import { brokerTarget } from "./target.ts";

/** A target as the broker takes it; a member's name only through the admin API. */
async function resolveTarget(config: Config, target: string): Promise<string> {
  const spec = brokerTarget(target);
  if (spec !== undefined) return spec;
  if (config.adminToken === undefined) {
    throw new UsageError(`with --http, name the target by pubkey, *, #channel or tag:name ("${target}" needs an admin token to look up)`);
  }
  const members = await new AdminApi(config.url, config.adminToken).listMembers(requireMesh(config));
  const named = members.filter((m) => m.displayName === target && m.revokedAt === null);
  if (named.length === 1 && named[0] !== undefined) return named[0].pubkey;
  throw new CliError(named.length === 0 ? `no member named "${target}"` : `${named.length} members are named "${target}"; send to a pubkey instead`);
}

export async function runHttpSend(ctx: Context, target: string, text: string): Promise<void> {
  const config = ctx.config();
  const token = ctx.args.string("token") ?? process.env.SWITCHBOARD_API_TOKEN;
  if (token === undefined || token === "") throw new UsageError("--http needs an API token: --token T or env SWITCHBOARD_API_TOKEN");
  headerToken(token, "the API token (--token or SWITCHBOARD_API_TOKEN)");
  const wait = ctx.args.positiveInt("wait");
  if (wait !== undefined && wait > MAX_WAIT_SECONDS) throw new UsageError(`--wait must be at most ${MAX_WAIT_SECONDS} seconds, not ${wait}`);
  const priority = ctx.args.oneOf("priority", prioritySchema.options);
  const ttlSeconds = ctx.args.positiveInt("ttl");
  const idempotencyKey = ctx.args.string("id");
  if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
    throw new UsageError(`--id must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters of visible ASCII`);
  }
  // Only a key file named for this send seals it, and it must exist (a
  // missing one must not send in the clear). The default one (keygen's) is
  // whichever member ran keygen, not necessarily the token's: sealed as
  // another member, the message could not be opened by its recipient.
  const key = config.keyFileNamed ? await readKeyFile(config.keyFile) : undefined;
  // The mesh named (--mesh, SWITCHBOARD_MESH, the config file) goes with the
  // send: a token of another mesh is refused, not used in its own.
  const sender = await HttpSender.create({
    url: httpBase(config.url),
    token,
    timeoutMs: REQUEST_TIMEOUT_MS,
    ...(config.mesh !== undefined ? { mesh: config.mesh } : {}),
    ...(key ? { secretKey: key.secretKey } : {}),
  });
  const resolved = await resolveTarget(config, target);
  const options = {
    ...(priority !== undefined ? { priority } : {}),
    ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
    ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
  };
  let result: HttpSendResult & Partial<Pick<HttpRequestResult, "reply" | "unreadableReply" | "waitFailed">>;
  try {
    result = wait === undefined ? await sender.send(resolved, text, options) : await sender.request(resolved, text, { ...options, waitSeconds: wait });
  } catch (error) {
    throw sendFailed(error);
  }
  const unreadable = result.unreadableReply ?? null;
  if (ctx.json) {
    // An error's own fields: JSON.stringify of an Error keeps its code, not its message.
    await outJson(unreadable === null ? result : { ...result, unreadableReply: { ...unreadable, error: { code: unreadable.error.code, message: unreadable.error.message } } });
  } else {
    const dup = result.duplicate ? ", duplicate of an earlier send" : "";
    await out(sentLine(result, `queued${dup}`));
  }
  // A reply that could not be read fails the command, with --json or not.
  if (unreadable !== null) {
    throw new CliError(`the reply ${unreadable.messageId} from ${shortKey(unreadable.senderPubkey)} could not be read: ${unreadable.error.message}`);
  }
  // Stored, but not waited for: the same --id with --wait waits for its reply.
  if (result.waitFailed === true) {
    throw new CliError(`the broker stored ${result.messageId} but could not wait for its reply; send it again with --id ${result.idempotencyKey} --wait ${wait} to wait for it`);
  }
  if (ctx.json || wait === undefined) return;
  const reply = result.reply ?? null;
  if (reply === null) return out(`no reply within ${wait} s`);
  const payload = typeof reply.payload === "string" ? reply.payload : (JSON.stringify(reply.payload) ?? "null");
  await out(`reply from ${shortKey(reply.senderPubkey)}: ${oneLine(payload)}`);
}
