// The command line's version, as its package names it: `switchboard
// --version` prints it and the MCP server announces it.
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
