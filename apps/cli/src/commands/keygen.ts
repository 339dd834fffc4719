// keygen: a fresh ed25519 identity in a 0600 file; the public key on stdout
// (alone, so `$(switchboard keygen …)` yields it).
import { generateKeypair } from "@switchboard/protocol";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Command } from "../command.ts";
import { operands } from "../command.ts";
import { expandPath } from "../config.ts";
import { CliError } from "../errors.ts";
import { writeAtomically } from "../json-file.ts";
import { err, out, outJson } from "../output.ts";

/** A new file only: one that appeared since the check is not replaced without --force. */
function createKeyFile(file: string, text: string): void {
  try {
    writeFileSync(file, text, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new CliError(`${file} already exists; pass --force to replace it`);
    throw error;
  }
  // The mode argument is filtered by the umask; make sure it ends up exactly 0600.
  chmodSync(file, 0o600);
}

export const keygen: Command = {
  words: ["keygen"],
  usage: "[--out FILE] [--force]",
  summary: "create a key pair (default file: the configured key file, ~/.config/switchboard/key.json)",
  options: { out: { type: "string" }, force: { type: "boolean" } },
  async run(ctx) {
    operands(ctx, []);
    // Given empty it would name the working directory, and --force would try to replace it.
    const outOption = ctx.args.nonEmpty("out");
    const file = outOption !== undefined ? expandPath(outOption) : ctx.config().keyFile;
    const force = ctx.args.flag("force");
    if (existsSync(file) && !force) throw new CliError(`${file} already exists; pass --force to replace it`);

    const { secretKey, publicKey } = await generateKeypair();
    const text = `${JSON.stringify({ secretKey, publicKey }, null, 2)}\n`;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      // Replaced through a temp file of a random name and a rename, removed if they fail: a crash never leaves a
      // half-written key, and a failure no stray copy of the secret.
      if (force) writeAtomically(file, text, { mode: 0o600, force: true });
      else createKeyFile(file, text);
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw new CliError(`cannot write key file ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }

    if (ctx.json) await outJson({ publicKey, keyFile: file });
    else {
      await out(publicKey);
      await err(`wrote ${file}`);
    }
  },
};
