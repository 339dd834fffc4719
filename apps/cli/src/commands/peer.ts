// Peer commands: listen, send, status. Each connects through the SDK as the
// member of the configured key file; the work is in ../peer-session.ts.
import type { Command } from "../command.ts";

const session = () => import("../peer-session.ts");

export const listen: Command = {
  words: ["listen"],
  usage: "--mesh M [--session S] [--count N] [--audience HOST]",
  summary:
    "print messages as they arrive (until Ctrl-C, N messages, or its output is closed), one sent in the clear marked (unencrypted); " +
    "each is acknowledged once printed, the rest stay queued",
  options: { mesh: { type: "string" }, audience: { type: "string" }, session: { type: "string" }, count: { type: "string" } },
  run: async (ctx) => (await session()).runListen(ctx),
};

export const send: Command = {
  words: ["send"],
  usage: "--mesh M <target> <text|-> [--priority now|next|low] [--id ID] [--ttl SECONDS] [--session S] [--audience HOST] [--http --token T [--wait S]]",
  summary:
    "send a text (- reads stdin) to a pubkey, *, #channel, tag:x or a member name; waits for the ack. " +
    "--http sends over the HTTP API with an API token (env SWITCHBOARD_API_TOKEN), --wait S also waits for the reply",
  options: {
    mesh: { type: "string" },
    audience: { type: "string" },
    session: { type: "string" },
    priority: { type: "string" },
    id: { type: "string" },
    ttl: { type: "string" },
    http: { type: "boolean" },
    token: { type: "string" },
    wait: { type: "string" },
  },
  run: async (ctx) => (await session()).runSend(ctx),
};

export const status: Command = {
  words: ["status"],
  usage: "--mesh M idle|working|dnd [--session S] [--audience HOST]",
  summary: "set the status of this command's own presence (it ends when the command exits) and print it",
  options: { mesh: { type: "string" }, audience: { type: "string" }, session: { type: "string" } },
  run: async (ctx) => (await session()).runStatus(ctx),
};
