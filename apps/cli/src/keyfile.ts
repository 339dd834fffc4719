// Reads the member's key file written by `switchboard keygen`.
import { publicKeyOf } from "@switchboard/protocol";
import { readFileSync } from "node:fs";
import { CliError } from "./errors.ts";

const HEX64 = /^[0-9a-f]{64}$/;

export interface KeyFile {
  secretKey: string;
  publicKey: string;
}

export async function readKeyFile(path: string): Promise<KeyFile> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new CliError(`no key file at ${path}; run \`switchboard keygen\` or pass --key FILE`);
    }
    throw new CliError(`cannot read key file ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`key file ${path} is not valid JSON`);
  }
  const secretKey = (parsed as { secretKey?: unknown } | null)?.secretKey;
  if (typeof secretKey !== "string" || !HEX64.test(secretKey)) {
    throw new CliError(`key file ${path} has no "secretKey" of 64 lowercase hex characters`);
  }
  const publicKey = await publicKeyOf(secretKey);
  const stated = (parsed as { publicKey?: unknown }).publicKey;
  if (stated !== undefined && stated !== publicKey) {
    throw new CliError(`key file ${path}: "publicKey" does not belong to its "secretKey"`);
  }
  return { secretKey, publicKey };
}
