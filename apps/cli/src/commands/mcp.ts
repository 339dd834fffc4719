// mcp: the MCP server Claude Code starts per session (see ../mcp/server.ts).
import type { Command } from "../command.ts";
import { operands, refuseJson } from "../command.ts";

export const mcp: Command = {
  words: ["mcp"],
  usage: "--mesh M [--session S] [--ack-delay-ms N] [--audience HOST]",
  summary: "run the MCP server (stdio) of one Claude Code session: its presence on the mesh, channel notifications and tools",
  options: { mesh: { type: "string" }, audience: { type: "string" }, session: { type: "string" }, "ack-delay-ms": { type: "string" } },
  async run(ctx) {
    operands(ctx, []);
    refuseJson(ctx, "mcp", "its standard output is the MCP protocol");
    return (await import("../mcp/server.ts")).runMcp(ctx);
  },
};
