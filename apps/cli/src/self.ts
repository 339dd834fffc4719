// How this command starts itself from a hook or from Claude Code: the Bun
// binary that runs it and the absolute path of its entry file, no wrapper in
// between (a wrapper such as `bun run` would change the parent pid that
// matches a session's hooks to its MCP server).
import { join } from "node:path";

export const CLI_MAIN = join(import.meta.dir, "main.ts");

export function selfCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: [CLI_MAIN] };
}
