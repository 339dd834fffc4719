// Every environment variable of the contract, parsed once at start. A bad
// value stops the start with one line that names the variable.
import { z } from "zod";

const int = (min: number, max: number, fallback: number) =>
  z.coerce
    .number({ error: "expected a whole number" })
    .int({ error: "expected a whole number" })
    .min(min, { error: `expected at least ${min}` })
    .max(max, { error: `expected at most ${max}` })
    .default(fallback);

const positive = (fallback: number) => int(1, 2_147_483_647, fallback);

const databaseUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\/.+/, { error: "expected a postgres:// or postgresql:// URL" });

const secret = z.string().min(16, { error: "expected at least 16 characters" });

// Values that may carry credentials: an error names the variable, never the
// value, and error reports never contain them.
export const SECRET_VARIABLES = ["DATABASE_URL", "ADMIN_TOKEN", "METRICS_TOKEN", "SENTRY_DSN"] as const;

export const configSchema = z.object({
  BROKER_PORT: int(0, 65535, 7900),
  HOST: z.string().min(1).default("0.0.0.0"),
  DATABASE_URL: databaseUrl.optional(),
  DATA_DIR: z.string().min(1).default("./.switchboard"),
  STATUS_TTL_SECONDS: positive(60),
  HOOK_FRESH_WINDOW_SECONDS: positive(30),
  MAX_CONNECTIONS_PER_MESH: positive(100),
  MAX_MESSAGE_BYTES: int(1024, 16 * 1024 * 1024, 65536),
  HOOK_RATE_LIMIT_PER_MIN: positive(30),
  SEND_RATE_LIMIT_PER_MIN: positive(6000),
  LEASE_SECONDS: positive(30),
  MESSAGE_TTL_SECONDS: positive(604800),
  ADMIN_TOKEN: secret.optional(),
  METRICS_TOKEN: secret.optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  GIT_SHA: z
    .string()
    .regex(/^[0-9a-f]{4,40}$/i, { error: "expected a hex commit id" })
    .optional(),
  DB_POOL_SIZE: int(1, 100, 10),
  SENTRY_DSN: z.url({ protocol: /^https?$/, error: "expected a Sentry DSN (an http or https URL)" }).optional(),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  readonly code = "bad_config";
}

/** Empty strings count as unset, as compose files and shells often pass them. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const present = Object.fromEntries(
    Object.keys(configSchema.shape).flatMap((key) => {
      const value = env[key];
      return value === undefined || value === "" ? [] : [[key, value]];
    }),
  );
  const parsed = configSchema.safeParse(present);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? "environment");
    const given = name in present && !(SECRET_VARIABLES as readonly string[]).includes(name) ? ` (got ${JSON.stringify(present[name])})` : "";
    return `invalid environment variable ${name}: ${issue.message}${given}`;
  });
  throw new ConfigError(lines.join("\n"));
}
