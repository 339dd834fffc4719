#!/usr/bin/env bun
// switchboard, the command line of the Switchboard broker. `hook forward` is
// what Claude Code runs, and waits for, on every prompt and every turn's end
// of a session with the hooks installed: it loads its own command alone
// (hook-entry.ts) and no package, not even zod, which every other command
// loads with the whole command line (cli.ts) and which was most of its time.
const given = process.argv.slice(2);
const forwardsHook = given[0] === "hook" && given[1] === "forward" && !given.some((a) => a === "--help" || a === "-h");

// A failed write to stdout reaches its own callback (output.ts), and a
// command acts on it there; the stream's 'error' event would print it again,
// as an uncaught error.
process.stdout.on("error", () => {});
const exitCode = forwardsHook ? import("./hook-entry.ts").then((m) => m.runHookForward(given)) : import("./cli.ts").then((m) => m.runCli(given));
void exitCode.then((code) => process.exit(code));
