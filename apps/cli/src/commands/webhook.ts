// webhook set | get | delete: a member whose deliveries go to an HTTP
// endpoint instead of its sockets (docs/http.md).
import type { WebhookStateView } from "@switchboard/protocol";
import type { Command, Context } from "../command.ts";
import { operands } from "../command.ts";
import { env } from "../config.ts";
import { UsageError } from "../errors.ts";
import { out, outJson, table } from "../output.ts";
import { api } from "./admin.ts";

async function show(ctx: Context, state: WebhookStateView, headline: string): Promise<void> {
  if (ctx.json) return outJson(state);
  const rows = [
    ["url", state.url],
    ["queued", String(state.queued)],
    ["failures", String(state.failures)],
    ["last attempt", state.lastAttemptAt ?? "-"],
    ["last outcome", state.lastOutcome === null ? "-" : `${state.lastOutcome}${state.lastStatus === null ? "" : ` (${state.lastStatus})`}`],
    ["next attempt", state.nextAttemptAt ?? "-"],
  ];
  await out(`${headline}\n${table(["FIELD", "VALUE"], rows)}`);
}

/** The mesh and the member's id, from the checked operands. */
async function target(ctx: Context, [mesh = "", ref = "", ...rest]: string[]): Promise<{ mesh: string; member: string; rest: string[] }> {
  return { mesh, member: await api(ctx).memberRef(mesh, ref), rest };
}

export const webhookSet: Command = {
  words: ["webhook", "set"],
  usage: "<mesh> <member> <url> --secret S",
  summary: "deliver a member's messages to an http(s) URL, signed with the secret (at least 16 characters)",
  options: { secret: { type: "string" } },
  async run(ctx) {
    // Missing operands are told first, as by every command, before the secret they would be set with.
    const given = operands(ctx, ["mesh", "member", "url"]);
    const secret = ctx.args.string("secret") ?? env("SWITCHBOARD_WEBHOOK_SECRET");
    if (secret === undefined) throw new UsageError("--secret S (or env SWITCHBOARD_WEBHOOK_SECRET) is required");
    const { mesh, member, rest } = await target(ctx, given);
    await show(ctx, await api(ctx).setWebhook(mesh, member, { url: rest[0] ?? "", secret }), `webhook set for ${member}`);
  },
};

export const webhookGet: Command = {
  words: ["webhook", "get"],
  usage: "<mesh> <member>",
  summary: "show a member's webhook: url, queued count, last attempt and outcome, next attempt",
  options: {},
  async run(ctx) {
    const { mesh, member } = await target(ctx, operands(ctx, ["mesh", "member"]));
    await show(ctx, await api(ctx).getWebhook(mesh, member), `webhook of ${member}`);
  },
};

export const webhookDelete: Command = {
  words: ["webhook", "delete"],
  usage: "<mesh> <member>",
  summary: "turn a webhook member back into a socket member (its queue stays)",
  options: {},
  async run(ctx) {
    const { mesh, member } = await target(ctx, operands(ctx, ["mesh", "member"]));
    await show(ctx, await api(ctx).deleteWebhook(mesh, member), `webhook of ${member} deleted; its queue goes to its sockets`);
  },
};
