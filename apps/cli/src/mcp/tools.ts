// The tools the model calls. Names and snake_case arguments are fixed by the
// integration contract; every result carries its data as text and as
// structuredContent, and every failure is an isError result with a code.
import type { SwitchboardClient } from "@switchboard/client";
import { CHANNEL, issueText, prioritySchema } from "@switchboard/protocol";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { PeerDirectory } from "./directory.ts";
import { ToolError, toolErrorOf } from "./errors.ts";
import { fittingFirst, type SessionInbox } from "./inbox.ts";

export interface ToolContext {
  /** The connected client; throws ToolError("unavailable") while there is none. */
  client(): SwitchboardClient;
  directory: PeerDirectory;
  inbox: SessionInbox;
}

interface ToolSpec<S extends z.ZodObject> {
  description: string;
  input: S;
  run(args: z.infer<S>, ctx: ToolContext): Promise<Record<string, unknown>>;
}

/**
 * A tool's arguments. A key the schema does not list is refused, as the
 * advertised additionalProperties: false says, not dropped: a camelCase
 * replyTo or a misspelled priority would otherwise change a send unseen.
 */
function argsOf<T extends z.core.$ZodLooseShape>(tool: string, shape: T) {
  const takes = Object.keys(shape).join(", ") || "none";
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown argument${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")} (${tool} takes ${takes})`
        : undefined,
  });
}

const hashed = (channel: string) => (channel.startsWith("#") ? channel : `#${channel}`);
const channelArg = (tool: string) =>
  argsOf(tool, {
    channel: z
      .string()
      .refine((c) => CHANNEL.test(hashed(c)), { error: "a channel name: letters, digits, . _ - (at most 64, not counting the #)" })
      .describe('Channel name, with or without the leading "#"'),
  });

function tool<S extends z.ZodObject>(spec: ToolSpec<S>): ToolSpec<S> {
  return spec;
}

type PeerKey = [name: string, pubkey: string];
const keyOf = (p: { display_name: string; pubkey: string }): PeerKey => [p.display_name, p.pubkey];
const compare = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
const compareKeys = ([an, ak]: PeerKey, [bn, bk]: PeerKey) => compare(an, bn) || compare(ak, bk);

/** A list_peers cursor: the peer's name and key, opaque (arguments that read as JSON are taken as JSON). */
const cursorOf = (key: PeerKey) => Buffer.from(JSON.stringify(key)).toString("base64url");

function cursorKey(after: string): PeerKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(after, "base64url").toString());
  } catch {
    parsed = undefined;
  }
  const key = z.tuple([z.string(), z.string()]).safeParse(parsed);
  if (!key.success) throw new ToolError("invalid", "after: give the next_after of the page before, as it was given");
  return key.data;
}

/** The most available status among a member's sessions. */
function peerStatus(statuses: string[]): string {
  for (const s of ["idle", "working", "dnd"]) if (statuses.includes(s)) return s;
  return "offline";
}

const TOOLS = {
  send_message: tool({
    description:
      "Send a text message to a member of the mesh (by display name or pubkey), to everyone (*), to a #channel or to tag:x. " +
      "To answer a message, pass its message_id as reply_to (an answer to its sender goes unencrypted when the message came so, for a sender that may hold no key to open it).",
    input: argsOf("send_message", {
      to: z.string().min(1).describe("A member's display name or 64-hex pubkey, *, #channel or tag:name"),
      // An empty message (or whitespace alone) would reach its recipients as nothing to read.
      text: z
        .string()
        .min(1, { error: "must not be empty: give the message to send", abort: true })
        .regex(/\S/, { error: "must not be empty: give the message to send" })
        .describe("The message"),
      priority: prioritySchema
        .optional()
        .describe("now: delivered even while the recipient is busy; next (default): at the end of its turn; low: when idle"),
      // Checked here, so a wrong one is named as the argument the model passed (the SDK would name its own replyTo).
      reply_to: z.uuid({ error: "a message_id as received (a UUID)" }).optional().describe("message_id of the message this answers"),
      id: z
        .string()
        .min(1)
        .max(128)
        .optional()
        .describe(
          "Only to send again a message whose failed send named a send_id (it may have been stored): that send_id, so it is stored at most once",
        ),
    }),
    async run(args, ctx) {
      const target = await ctx.directory.resolve(args.to);
      // Answered in kind, as the SDK's reply() answers: a message sent
      // unencrypted (over HTTP by a service that holds no key) gets its answer
      // so, or its sender could not read it.
      const answered = args.reply_to === undefined ? undefined : ctx.inbox.received(args.reply_to);
      const plain = answered !== undefined && !answered.encrypted && answered.fromPubkey === target;
      const result = await ctx.client().send(target, args.text, {
        ...(args.priority !== undefined ? { priority: args.priority } : {}),
        ...(args.reply_to !== undefined ? { replyTo: args.reply_to } : {}),
        ...(args.id !== undefined ? { id: args.id } : {}),
        ...(plain ? { encrypt: false } : {}),
      });
      // duplicate: this id was stored already (a resend): nothing new was sent.
      // full_queues: members of the target whose queue was full, who do not get it.
      return {
        message_id: result.messageId,
        recipients: result.recipients,
        target,
        ...(result.fullQueues > 0 ? { full_queues: result.fullQueues } : {}),
        ...(result.duplicate ? { duplicate: true } : {}),
      };
    },
  }),
  check_messages: tool({
    description:
      "The messages received since the last call (whether or not they were already shown to you as channel notifications), oldest first; clears that list. " +
      "A long list comes a page at a time: `more` says how many are left for the next call. " +
      "A message too long for one page comes in parts over successive calls, each with its message_id and `part` of `parts` (from 1): join their texts. " +
      "`encrypted: false` marks a message sent unencrypted (to a channel, or over HTTP): only the broker vouches that it comes from `from`. " +
      "`connection` (code, message) is there while this session is not connected to the broker: nothing new arrives until it is.",
    input: argsOf("check_messages", {}),
    async run(_args, ctx) {
      const { messages, more, dropped } = ctx.inbox.take();
      // A session without channels learns of messages only here: an empty list while disconnected must not read as "nobody wrote".
      let connection: { code: string; message: string } | undefined;
      try {
        ctx.client();
      } catch (error) {
        const { code, message } = toolErrorOf(error);
        connection = { code, message };
      }
      return {
        messages,
        ...(more > 0 ? { more } : {}),
        ...(dropped > 0 ? { dropped_oldest: dropped } : {}),
        ...(connection === undefined ? {} : { connection }),
      };
    },
  }),
  list_peers: tool({
    description:
      "The members of the mesh that are online now, with their status (idle, working, dnd) and number of sessions, by name. " +
      "A long list comes a page at a time: `more` says how many are left, and `after` set to the `next_after` given asks for the rest.",
    input: argsOf("list_peers", {
      after: z.string().optional().describe("The next_after of the page before: the list goes on after that peer; default from the first"),
    }),
    async run(args, ctx) {
      const me = ctx.client().publicKey;
      const peers = (await ctx.directory.livePeers())
        .map((p) => ({
          display_name: p.displayName,
          pubkey: p.pubkey,
          status: peerStatus(p.presences.map((s) => s.status)),
          sessions: p.presences.length,
          you: p.pubkey === me,
        }))
        .sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
      // A mesh of hundreds online would make a result Claude Code moves aside or
      // refuses. The next page goes on after a peer's name and key, not at a
      // count: peers that come or go between the calls move no one else.
      const after = args.after === undefined ? undefined : cursorKey(args.after);
      const rest = after === undefined ? peers : peers.filter((p) => compareKeys(keyOf(p), after) > 0);
      const page = rest.slice(0, fittingFirst(rest));
      const more = rest.length - page.length;
      const last = page.at(-1);
      return { peers: page, ...(more > 0 && last !== undefined ? { more, next_after: cursorOf(keyOf(last)) } : {}) };
    },
  }),
  set_status: tool({
    description:
      "Set this session's status: idle, working or dnd (do not disturb: only priority now reaches you until you set another). " +
      "Claude Code's hooks set working when a turn starts and idle when it ends, and outrank idle and working set here for a while after; dnd always applies. " +
      "`applied` says whether the session now has the status asked for.",
    input: argsOf("set_status", { status: z.enum(["idle", "working", "dnd"]) }),
    async run(args, ctx) {
      const result = await ctx.client().setStatus(args.status, "manual");
      const data = { status: result.status, status_source: result.statusSource, applied: result.status === args.status };
      if (data.applied) return data;
      // The broker answers the status it kept, not a refusal: said in words, so it is not read as the one asked for.
      const why =
        result.statusSource === "hook"
          ? "Claude Code's hooks set it (working when a turn starts, idle when it ends) and outrank set_status idle or working for a while after; dnd always applies"
          : `the broker kept the one set by ${result.statusSource}`;
      return { ...data, note: `the status stays ${result.status}: ${why}` };
    },
  }),
  join_channel: tool({
    description: "Join a #channel: messages sent to it reach this member from then on.",
    input: channelArg("join_channel"),
    async run(args, ctx) {
      await ctx.client().join(hashed(args.channel));
      return { channel: hashed(args.channel), joined: true };
    },
  }),
  leave_channel: tool({
    description: "Leave a #channel.",
    input: channelArg("leave_channel"),
    async run(args, ctx) {
      await ctx.client().leave(hashed(args.channel));
      return { channel: hashed(args.channel), joined: false };
    },
  }),
} as const;

export type ToolName = keyof typeof TOOLS;
export const TOOL_NAMES = Object.keys(TOOLS) as ToolName[];

/** The tools/list answer: each tool's JSON Schema comes from its zod schema. */
export function toolList(): Tool[] {
  return TOOL_NAMES.map((name) => {
    const spec = TOOLS[name];
    const schema = z.toJSONSchema(spec.input) as Tool["inputSchema"];
    delete (schema as { $schema?: unknown }).$schema;
    return { name, description: spec.description, inputSchema: schema };
  });
}

function result(data: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(data) }], structuredContent: data };
}

export function failure({ code, message, sendId }: ToolError): CallToolResult {
  const again = sendId === undefined ? "" : ` (to send it again, pass id: "${sendId}")`;
  const data = { error: { code, message, ...(sendId === undefined ? {} : { send_id: sendId }) } };
  return { content: [{ type: "text", text: `${code}: ${message}${again}` }], structuredContent: data, isError: true };
}

export async function callTool(name: string, args: unknown, ctx: ToolContext): Promise<CallToolResult> {
  if (!Object.hasOwn(TOOLS, name)) return failure(new ToolError("unknown_tool", `no tool named "${name}"`));
  const spec = TOOLS[name as ToolName] as ToolSpec<z.ZodObject>;
  const given = args ?? {};
  const parsed = spec.input.safeParse(given);
  if (!parsed.success) return failure(new ToolError("invalid", issueText(parsed.error, given, "arguments")));
  try {
    return result(await spec.run(parsed.data, ctx));
  } catch (error) {
    return failure(toolErrorOf(error));
  }
}
