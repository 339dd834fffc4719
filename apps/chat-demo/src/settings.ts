// The demo server's settings from its environment, checked before anything
// starts: a bad one stops it with a message naming the variable, as the
// broker's do, rather than a server that starts and fails every page.
import type { DemoOptions } from "./server.ts";

export class SettingsError extends Error {}

function wholeNumber(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) throw new SettingsError(`${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return value;
}

function nonEmpty(env: Record<string, string | undefined>, name: string, fallback: string): string {
  const text = env[name];
  if (text === undefined) return fallback;
  if (text.trim() === "") throw new SettingsError(`${name}: must not be empty`);
  return text;
}

export function demoSettings(env: Record<string, string | undefined>): DemoOptions {
  const jwtSecret = env.JWT_SECRET ?? "";
  // The broker refuses such a secret, so the demo's could never be the broker's: every token would be refused.
  if (jwtSecret.length < 32) throw new SettingsError("JWT_SECRET: the broker's is required, at least 32 characters");
  if (jwtSecret.trim() !== jwtSecret) throw new SettingsError("JWT_SECRET: begins or ends with whitespace (a trailing newline?), which the broker's cannot");
  const brokerUrl = nonEmpty(env, "SWITCHBOARD_URL", "http://127.0.0.1:7900");
  let protocol: string | null = null;
  try {
    protocol = new URL(brokerUrl).protocol;
  } catch {
    protocol = null;
  }
  if (protocol === null || !["http:", "https:", "ws:", "wss:"].includes(protocol)) {
    throw new SettingsError(`SWITCHBOARD_URL: expected an http(s):// or ws(s):// URL of the broker, got ${JSON.stringify(brokerUrl)}`);
  }
  return {
    port: wholeNumber(env, "DEMO_PORT", 7901, 0, 65535),
    hostname: nonEmpty(env, "DEMO_HOST", "127.0.0.1"),
    brokerUrl,
    jwtSecret,
    mesh: nonEmpty(env, "DEMO_MESH", "demo"),
    tokenSeconds: wholeNumber(env, "DEMO_TOKEN_SECONDS", 3600, 1, 31_536_000),
  };
}
