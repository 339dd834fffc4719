// The command line: finds the command named by the leading words, parses
// its options strictly, runs it, and turns failures into one line on stderr
// and an exit code (report.ts). Loaded by main.ts for every command but
// `hook forward`.
import { leadingWords, parseCommandArgs, type OptionSpecs } from "./args.ts";
import { makeContext, type Command } from "./command.ts";
import { meshCreate, meshList, memberAdd, memberList, memberRevoke, peers, tokenCreate, tokenList, tokenRevoke } from "./commands/admin.ts";
import { hookForward } from "./commands/hook.ts";
import { hookInstall, hookUninstall, installCommand, uninstallCommand } from "./commands/install.ts";
import { keygen } from "./commands/keygen.ts";
import { mcp } from "./commands/mcp.ts";
import { listen, send, status } from "./commands/peer.ts";
import { version } from "./commands/version.ts";
import { webhookDelete, webhookGet, webhookSet } from "./commands/webhook.ts";
import { DEFAULT_URL } from "./config.ts";
import { UsageError } from "./errors.ts";
import { out } from "./output.ts";
import { report } from "./report.ts";

/** Every command, in the order help lists them. */
export const COMMANDS: Command[] = [
  keygen,
  meshCreate,
  meshList,
  memberAdd,
  memberRevoke,
  memberList,
  tokenCreate,
  tokenList,
  tokenRevoke,
  peers,
  listen,
  send,
  status,
  mcp,
  installCommand,
  uninstallCommand,
  hookInstall,
  hookUninstall,
  hookForward,
  webhookSet,
  webhookGet,
  webhookDelete,
  version,
];

/** `help` itself, which main() answers before any command is looked up. */
const HELP = { usage: "[command]", summary: "this text, or one command's" };

function helpText(): string {
  return [
    "usage: switchboard <command> [options]",
    "",
    "commands:",
    ...COMMANDS.flatMap((c) => [`  ${c.words.join(" ")} ${c.usage}`.trimEnd(), `      ${c.summary}`]),
    `  help ${HELP.usage}`,
    `      ${HELP.summary}`,
    "",
    "options of every command:",
    `  --url U           broker URL (env SWITCHBOARD_URL, config "url"; default ${DEFAULT_URL})`,
    '  --admin-token T   admin API token (env SWITCHBOARD_ADMIN_TOKEN, config "adminToken")',
    '  --key FILE        key file (env SWITCHBOARD_KEY, config "keyFile"; default ~/.config/switchboard/key.json)',
    "  --config FILE     config file (default ~/.config/switchboard/config.json)",
    "  --json            machine-readable output, one JSON value per line (not mcp, hook forward)",
    "  -h, --help        help",
    '--mesh M may also come from env SWITCHBOARD_MESH or config "mesh";',
    '--audience HOST (the broker name a hello is signed for; default the URL\'s host) from env SWITCHBOARD_AUDIENCE or config "audience".',
    "exit codes: 0 ok, 1 failure, 2 usage error",
  ].join("\n");
}

function commandHelp(c: Command): string {
  return `usage: switchboard ${c.words.join(" ")} ${c.usage}\n  ${c.summary}`.replace(/ +\n/, "\n");
}

/** One command's help, or every command of a group's (`help mesh`). */
function topicHelp(topic: string[]): string {
  if (topic.length === 1 && topic[0] === "help") return `usage: switchboard help ${HELP.usage}\n  ${HELP.summary}`;
  const group = COMMANDS.filter((c) => c.words[0] === topic[0]);
  if (topic.length === 1 && group.length > 1) return group.map(commandHelp).join("\n");
  const command = findCommand(topic);
  if (topic.length > command.words.length) throw new UsageError(`unexpected argument "${topic[command.words.length]}"`);
  return commandHelp(command);
}

function findCommand(words: string[]): Command {
  const [first, second] = words;
  if (first === undefined) throw new UsageError("no command given; run `switchboard help`");
  const exact = COMMANDS.find((c) => c.words.every((w, i) => words[i] === w));
  if (exact) return exact;
  const group = COMMANDS.filter((c) => c.words[0] === first);
  if (group.length > 0) {
    const subs = group.map((c) => c.words[1]).join(", ");
    throw new UsageError(second === undefined ? `${first} needs a subcommand: ${subs}` : `unknown command "${first} ${second}"; try ${subs}`);
  }
  throw new UsageError(`unknown command "${first}"; run \`switchboard help\``);
}

async function main(given: string[]): Promise<number> {
  const allOptions: OptionSpecs = Object.assign({}, ...COMMANDS.map((c) => c.options));
  // `--version` without a command is the version command (its other options and words kept, so
  // `--version extra` is refused as `version extra` is), as with most command lines.
  const rest = given.filter((a) => a !== "--version");
  const first = rest.length < given.length ? leadingWords(rest, allOptions)[0] : undefined;
  const versionAsked = rest.length < given.length && !COMMANDS.some((c) => c.words[0] === first);
  const argv = versionAsked ? ["version", ...rest] : given;
  const words = leadingWords(argv, allOptions);
  if (words[0] === "help" || (words.length === 0 && argv.some((a) => a === "--help" || a === "-h"))) {
    const topic = words[0] === "help" ? words.slice(1) : [];
    await out(topic.length > 0 ? topicHelp(topic) : helpText());
    return 0;
  }
  const wantsHelp = argv.some((a) => a === "--help" || a === "-h");
  const group = COMMANDS.filter((c) => c.words[0] === words[0]);
  // `mesh --help` is the group's; `mesh craete --help` is refused below, as `help mesh craete` is.
  if (wantsHelp && group.length > 1 && words[1] === undefined) {
    await out(group.map(commandHelp).join("\n"));
    return 0;
  }
  const command = findCommand(words);
  const args = parseCommandArgs(argv, command.options);
  if (args.flag("help")) {
    await out(commandHelp(command));
    return 0;
  }
  return (await command.run(makeContext(args, command.words.length))) ?? 0;
}

/** Runs the command `given` names; its exit code. */
export function runCli(given: string[]): Promise<number> {
  return main(given).catch(report);
}
