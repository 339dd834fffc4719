// install / uninstall: Switchboard in Claude Code in one command (see
// ../claude/install.ts); `hook install` / `hook uninstall` are the same commands.
import { TOKEN_PREFIX } from "@switchboard/protocol";
import { audienceOption } from "../audience.ts";
import type { Command } from "../command.ts";
import { operands } from "../command.ts";
import { httpBase, requireMesh } from "../config.ts";
import { holdsOurHooks, install, uninstall } from "../claude/install.ts";
import { HOOK_EVENTS } from "../claude/hooks.ts";
import { layoutFor, SCOPES } from "../claude/layout.ts";
import { UsageError } from "../errors.ts";
import { readKeyFile } from "../keyfile.ts";
import { err, oneLine, out, outJson } from "../output.ts";
import { selfCommand } from "../self.ts";

export const LAUNCH_LINE = "claude --dangerously-load-development-channels server:switchboard";

const scopeOption = { scope: { type: "string" } } as const;

/** On stderr, one line each: the command still did its work. */
async function warn(warnings: string[]): Promise<void> {
  for (const warning of warnings) await err(`switchboard: warning: ${oneLine(warning)}`);
}

export const installCommand: Command = {
  words: ["install"],
  usage: "--mesh M --token T [--key FILE] [--audience HOST] [--scope project|user]",
  summary:
    "set up Claude Code: the MCP server (project: ./.mcp.json, user: ~/.claude.json), the status hooks " +
    "(project: ./.claude/settings.local.json, user: ~/.claude/settings.json; both user files in $CLAUDE_CONFIG_DIR when set) and the hook token (a 0600 file under ~/.config/switchboard)",
  options: { ...scopeOption, mesh: { type: "string" }, audience: { type: "string" }, token: { type: "string" } },
  async run(ctx) {
    operands(ctx, []);
    // An empty one is what a failed $(switchboard token create …) leaves.
    const token = ctx.args.nonEmpty("token", "did the command that was to print it fail?");
    if (token === undefined) throw new UsageError("--token T is required (create one with `switchboard token create <mesh> <member>`)");
    if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError("--token must be printable characters without spaces");
    // Both kinds come from `token create`; the hooks would post an API token to /hook/set-status, refused every time, and never say so.
    if (token.startsWith(TOKEN_PREFIX.api)) {
      throw new UsageError(
        `--token is an API token (${TOKEN_PREFIX.api}…): install takes a hook token (${TOKEN_PREFIX.hook}…), from \`switchboard token create <mesh> <member>\``,
      );
    }
    const layout = layoutFor(ctx.args.oneOf("scope", SCOPES) ?? "project");
    const config = ctx.config();
    const mesh = requireMesh(config);
    const { audience } = audienceOption(config);
    // The key must be readable now rather than fail in every session later.
    await readKeyFile(config.keyFile);
    const explicitConfig = ctx.args.string("config");
    const mcpArgs = [
      "mcp",
      "--url",
      config.url,
      "--mesh",
      mesh,
      ...(audience !== undefined ? ["--audience", audience] : []),
      "--key",
      config.keyFile,
      ...(explicitConfig !== undefined ? ["--config", config.configFile] : []),
    ];
    const { warnings } = install({ layout, self: selfCommand(), hookUrl: httpBase(config.url), token, mcpArgs });
    // Claude Code runs the hooks of both scopes: each event would be posted twice, with two installs' tokens.
    const other = layoutFor(layout.scope === "user" ? "project" : "user");
    if (holdsOurHooks(other.settingsFile)) {
      warnings.push(
        `${other.settingsFile} holds the hooks of a ${other.scope}-scope install too: Claude Code runs both, so each hook event ` +
          `is posted twice, with each install's token; keep one (\`switchboard uninstall --scope ${other.scope}\` takes the other out)`,
      );
    }
    await warn(warnings);
    if (ctx.json) {
      return void (await outJson({
        scope: layout.scope,
        mesh,
        url: config.url,
        audience: audience ?? null,
        mcpConfig: layout.mcpFile,
        settings: layout.settingsFile,
        tokenFile: layout.tokenFile,
        launch: LAUNCH_LINE,
      }));
    }
    const events = HOOK_EVENTS.map((e) => (e.matcher ? `${e.event} ${e.matcher}` : e.event)).join(", ");
    await out(
      [
        `installed switchboard for Claude Code (${layout.scope} scope, mesh ${mesh}, broker ${config.url}${audience === undefined ? "" : `, audience ${audience}`})`,
        `  MCP server "switchboard"  ${layout.mcpFile}`,
        `  hooks (${events})  ${layout.settingsFile}`,
        `  hook token (mode 0600)  ${layout.tokenFile}`,
        "start Claude Code with channels on:",
        `  ${LAUNCH_LINE}`,
      ].join("\n"),
    );
  },
};

export const uninstallCommand: Command = {
  words: ["uninstall"],
  usage: "[--scope project|user]",
  summary: "take back what install added (other servers, hooks and keys stay)",
  options: { ...scopeOption },
  async run(ctx) {
    operands(ctx, []);
    const layout = layoutFor(ctx.args.oneOf("scope", SCOPES) ?? "project");
    const report = uninstall(layout, selfCommand());
    await warn(report.warnings);
    if (ctx.json) return void (await outJson({ scope: layout.scope, ...report }));
    const what = [
      `${report.hooksRemoved} hook(s)`,
      report.serverRestored
        ? 'the MCP server "switchboard" (the one it had replaced is back)'
        : report.serverRemoved
          ? 'the MCP server "switchboard"'
          : "no MCP server",
      `${report.removedFiles.length} file(s) or directories`,
    ];
    await out(`removed ${what.join(", ")} (${layout.scope} scope)`);
  },
};

export const hookInstall: Command = { ...installCommand, words: ["hook", "install"], summary: "the same as install" };
export const hookUninstall: Command = { ...uninstallCommand, words: ["hook", "uninstall"], summary: "the same as uninstall" };
