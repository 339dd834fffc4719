// Every environment variable of the contract, parsed once at start. A bad
// value stops the start with one line that names the variable.
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { isPostgresUrl, readableDatabaseUrl, UNREADABLE_DATABASE_URL } from "@switchboard/db";
import { audienceSchema, BEARER_TOKEN, BEARER_TOKEN_RULE } from "@switchboard/protocol";
import { z } from "zod";

// Digits only: Number() would take " " as 0, "0x1F90" as 8080 and "7e3" as 7000.
const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^-?[0-9]+$/, { error: "expected a whole number" })
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, { error: `expected at least ${min}` })
        .max(max, { error: `expected at most ${max}` }),
    );

const int = (min: number, max: number, fallback: number) => wholeNumber(min, max).default(fallback);

const positive = (fallback: number) => int(1, 2_147_483_647, fallback);

const DAY = 86_400;

/**
 * The shortest time an ended presence's row is kept, for what reads it.
 * An instance holding the socket of a replaced or revoked presence, whose
 * wake-up it missed, closes it when its catch-up finds the row ended
 * (endedPresences in store/presences.ts); with the row deleted the socket
 * would stay open, receiving nothing. The catch-up runs every
 * CATCH_UP_INTERVAL_MS (at most 600 s), and an instance cut off or frozen
 * past its INSTANCE_LEASE_SECONDS (at most 3600 s) is reaped and closes
 * every socket as it wakes: two hours covers the two at their longest
 * together, with room for a catch-up the database slows. A session
 * reconnecting within the retention keeps its status, its `dnd` among them
 * (store/hello.ts): two hours also covers a restart or a deploy. The other
 * readers need seconds: a `left` event is read from the row as its wake-up
 * arrives, and a lease a send gave a presence as it ended is put back
 * within seconds (recent-ends.ts; until then, setting a webhook would
 * take a lease whose presence row is gone for a webhook request's).
 */
const MIN_ENDED_PRESENCE_RETENTION_SECONDS = 2 * 3600;

const databaseUrl = z
  .string()
  .refine(isPostgresUrl, { error: "expected a postgres:// or postgresql:// URL" })
  .refine(readableDatabaseUrl, { error: UNREADABLE_DATABASE_URL });


// A bearer token cannot carry whitespace, so one with a space (or the trailing
// newline of a secret file) could never be presented. Nor one outside
// printable ASCII: fetch refuses to send it, and curl sends its UTF-8 bytes,
// which the broker reads as other characters.
const secret = z
  .string()
  .min(16, { error: "expected at least 16 characters" })
  .regex(/^\S+$/, { error: "contains whitespace (a trailing newline?), which no Authorization header can carry" })
  .regex(BEARER_TOKEN, { error: BEARER_TOKEN_RULE });

export type JwtKeyAlgorithm = "RS256" | "EdDSA";

const MIN_RSA_BITS = 2048;

/** Whether the text is a private key: Node derives a public key from one, so createPublicKey alone would take it. */
function isPrivateKey(pem: string): boolean {
  try {
    createPrivateKey(pem);
    return true;
  } catch {
    return false;
  }
}

/**
 * A PEM public key (SPKI or PKCS#1) or certificate, literal "\n" escapes
 * allowed as env files write them: its public key as SPKI PEM, which is what
 * the verifier imports, and the JWT algorithm it verifies.
 */
const jwtPublicKey = z.string().transform((text, ctx) => {
  const given = text.replaceAll("\\n", "\n");
  if (isPrivateKey(given)) {
    ctx.addIssue({ code: "custom", message: "a private key; give its public key (openssl pkey -pubout), and keep the private key secret" });
    return z.NEVER;
  }
  let key: KeyObject | undefined;
  try {
    key = createPublicKey(given);
  } catch {
    key = undefined;
  }
  const type = key?.asymmetricKeyType;
  const alg: JwtKeyAlgorithm | null = type === "rsa" ? "RS256" : type === "ed25519" ? "EdDSA" : null;
  if (alg === null || key === undefined) {
    ctx.addIssue({ code: "custom", message: "expected a PEM public key, RSA (RS256) or Ed25519 (EdDSA)" });
    return z.NEVER;
  }
  // jose verifies RS256 only with a modulus of 2048 bits or more: a shorter key would refuse every token.
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (alg === "RS256" && bits !== undefined && bits < MIN_RSA_BITS) {
    ctx.addIssue({ code: "custom", message: `an RSA key of ${bits} bits; RS256 needs ${MIN_RSA_BITS} or more` });
    return z.NEVER;
  }
  return { pem: key.export({ type: "spki", format: "pem" }).toString(), alg };
});

/** Comma-separated origins (scheme://host[:port]), as browsers send them in the Origin header. */
const origins = z.string().transform((text, ctx) => {
  const list = text.split(",").map((o) => o.trim()).filter((o) => o !== "");
  for (const origin of list) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = null;
    }
    if (parsed === null || parsed.origin !== origin) {
      ctx.addIssue({ code: "custom", message: `${origin} is not an origin like https://app.example.com` });
      return z.NEVER;
    }
  }
  return list;
});

const flag = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0"], { error: "expected true or false" })
    .transform((v) => v === "true" || v === "1")
    .default(fallback);

export const configSchema = z.object({
  BROKER_PORT: int(0, 65535, 7900),
  HOST: z.string().min(1).default("0.0.0.0"),
  DATABASE_URL: databaseUrl.optional(),
  DATA_DIR: z.string().min(1).default("./.switchboard"),
  STATUS_TTL_SECONDS: positive(60),
  HOOK_FRESH_WINDOW_SECONDS: positive(30),
  MAX_CONNECTIONS_PER_MESH: positive(100),
  // One member's share of them: one key or one browser token must not take the whole mesh.
  MAX_CONNECTIONS_PER_MEMBER: positive(50),
  MAX_MESSAGE_BYTES: int(1024, 16 * 1024 * 1024, 65536),
  HOOK_RATE_LIMIT_PER_MIN: positive(30),
  SEND_RATE_LIMIT_PER_MIN: positive(6000),
  // Recipients a member's sends may reach a minute: at the send limit to a
  // mesh of MAX_CONNECTIONS_PER_MESH, whatever the mesh's size beyond it.
  SEND_RECIPIENTS_RATE_LIMIT_PER_MIN: positive(600_000),
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
  DB_ANSWER_TIMEOUT_SECONDS: int(1, 3600, 15),
  // Bounds against floods: every frame type is limited, every buffer capped.
  HOOK_RATE_LIMIT_PER_TOKEN_PER_MIN: positive(300),
  CONTROL_RATE_LIMIT_PER_MIN: positive(600),
  // Content of the history pages a member may read a minute: pages are
  // control frames, and at that limit of a megabyte each they would have the
  // database read 600 MB a minute for one member.
  HISTORY_BYTES_PER_MIN: positive(67_108_864),
  ACK_RATE_LIMIT_PER_MIN: positive(120_000),
  MAX_REFUSED_FRAMES_PER_MIN: positive(1000),
  MAX_CHANNELS_PER_MEMBER: positive(100),
  // Hellos one member may have admitted in a minute: a key reconnecting in a
  // loop would write a presence per hello and flood its mesh's subscribers.
  HELLO_RATE_LIMIT_PER_MIN: positive(300),
  // Deliveries a member has not taken, past which it is sent nothing more
  // until it takes some: one member offline (or one sender in a loop) must
  // not fill the database.
  MAX_QUEUED_PER_MEMBER: positive(100_000),
  CONNECTION_INFLIGHT_FRAMES: int(8, 100_000, 256),
  CONNECTION_INFLIGHT_BYTES: int(65_536, 1_073_741_824, 4 * 1024 * 1024),
  INSTANCE_INFLIGHT_BYTES: int(1_048_576, 17_179_869_184, 256 * 1024 * 1024),
  SOCKET_BUFFER_BYTES: int(65_536, 1_073_741_824, 8 * 1024 * 1024),
  INSTANCE_SOCKET_BUFFER_BYTES: int(1_048_576, 17_179_869_184, 256 * 1024 * 1024),
  STALLED_PRESENCE_SECONDS: positive(60),
  SILENT_PEER_SECONDS: int(1, 86_400, 60),
  MAX_PENDING_HELLOS: positive(10_000),
  MAX_PENDING_HELLOS_PER_ADDRESS: positive(2000),
  HELLO_FAILURES_PER_ADDRESS_PER_MIN: positive(600),
  TRUSTED_PROXIES: z
    .string()
    .transform((v) => v.split(",").map((a) => a.trim()).filter((a) => a.length > 0))
    .pipe(
      z.array(
        z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()], {
          error: "expected a comma-separated list of IP addresses or CIDR ranges",
        }),
      ),
    )
    .default([]),
  // The names a signed hello must be signed for (its audience); unset, any or none.
  HELLO_AUDIENCES: z
    .string()
    .transform((v) => v.split(",").map((a) => a.trim().toLowerCase()).filter((a) => a.length > 0))
    .pipe(z.array(audienceSchema).min(1, { error: "expected at least one host" }))
    .optional(),
  // Webhook targets in private, loopback or link-local ranges are refused unless this is true.
  WEBHOOK_ALLOW_PRIVATE: flag(false),
  // Requests waiting for a reply (POST /v1/messages?wait=S) on one instance.
  MAX_REPLY_WAITERS: int(1, 1_000_000, 1000),
  // The same for one member: one token must not take every wait of the instance.
  MAX_REPLY_WAITERS_PER_MEMBER: int(1, 1_000_000, 200),
  // On SIGTERM, how long the instance keeps serving while /health/ready says
  // draining, so a proxy's health check sees it before the port closes. Within
  // the 9 s the shutdown has, hence at most 5 s.
  SHUTDOWN_DRAIN_MS: int(0, 5000, 0),
  // Timing of the broker's own machinery. The defaults are the production
  // values; tests shorten them instead of sleeping them out.
  HELLO_TIMEOUT_MS: int(100, 600_000, 10_000),
  PENDING_HOOK_SECONDS: positive(10),
  INSTANCE_LEASE_SECONDS: int(2, 3600, 15),
  CATCH_UP_INTERVAL_MS: int(50, 600_000, 2000),
  SWEEP_INTERVAL_MS: int(50, 600_000, 1000),
  HOUSEKEEPING_INTERVAL_MS: int(100, 3_600_000, 10_000),
  DELIVERED_RETENTION_SECONDS: positive(3600),
  // The broker writes audit rows and never reads them: any retention is safe.
  AUDIT_RETENTION_SECONDS: positive(30 * DAY),
  ENDED_PRESENCE_RETENTION_SECONDS: int(MIN_ENDED_PRESENCE_RETENTION_SECONDS, 2_147_483_647, DAY),
  WEBHOOK_TIMEOUT_MS: int(100, 600_000, 10_000),
  WEBHOOK_BACKOFF_MIN_MS: int(10, 3_600_000, 1000),
  WEBHOOK_BACKOFF_MAX_MS: int(10, 86_400_000, 300_000),
  SENTRY_DSN: z.url({ protocol: /^https?$/, error: "expected a Sentry DSN (an http or https URL)" }).optional(),
  // Browsers (docs/browser.md).
  // Whitespace at an end is a secret file's newline, which the token issuer's copy lacks: every JWT hello would fail.
  JWT_SECRET: z
    .string()
    .min(32, { error: "expected at least 32 characters" })
    .regex(/^\S(.*\S)?$/s, { error: "begins or ends with whitespace (a trailing newline?), which the issuer's secret would not have" })
    .optional(),
  JWT_PUBLIC_KEY: jwtPublicKey.optional(),
  CORS_ORIGINS: origins.optional(),
  /** Unset: MESSAGE_TTL_SECONDS. */
  HISTORY_RETENTION_SECONDS: wholeNumber(1, 2_147_483_647).optional(),
  /** Unset: no bound by count. Else a channel's settled messages beyond its newest this many are pruned after DELIVERED_RETENTION_SECONDS. */
  HISTORY_MAX_PER_CHANNEL: wholeNumber(1, 2_147_483_647).optional(),
  DASHBOARD: flag(true),
}).superRefine((c, ctx) => {
  if (c.WEBHOOK_BACKOFF_MIN_MS > c.WEBHOOK_BACKOFF_MAX_MS) {
    ctx.addIssue({
      code: "custom",
      path: ["WEBHOOK_BACKOFF_MIN_MS"],
      message: `${c.WEBHOOK_BACKOFF_MIN_MS} is more than WEBHOOK_BACKOFF_MAX_MS (${c.WEBHOOK_BACKOFF_MAX_MS})`,
    });
  }
  // Request bodies may take half the instance's budget (body-budget.ts): a larger one would be refused "try again" for good.
  if (c.MAX_MESSAGE_BYTES > c.INSTANCE_INFLIGHT_BYTES / 2) {
    ctx.addIssue({
      code: "custom",
      path: ["INSTANCE_INFLIGHT_BYTES"],
      message: `${c.INSTANCE_INFLIGHT_BYTES} holds fewer than two messages of MAX_MESSAGE_BYTES (${c.MAX_MESSAGE_BYTES}); request bodies may take half of it`,
    });
  }
});

export type Config = z.infer<typeof configSchema>;

/** Variables that hold or may hold a credential: never shown whole in an error message, never in an error report. */
export const SECRET_VARIABLES = ["ADMIN_TOKEN", "METRICS_TOKEN", "JWT_SECRET", "SENTRY_DSN", "DATABASE_URL"] as const;
/** URLs that may carry a password: an error shows them with the password replaced. */
const URLS_WITH_PASSWORD: ReadonlySet<string> = new Set(["DATABASE_URL"]);
/** The other secrets: an error names them but never shows what was given. */
const SECRETS: ReadonlySet<string> = new Set(SECRET_VARIABLES.filter((name) => !URLS_WITH_PASSWORD.has(name)));

export class ConfigError extends Error {
  readonly code = "bad_config";
}

/**
 * A URL with its password replaced (in its userinfo, and in any query
 * parameter named like one, as libpq and JDBC take it), or nothing when it
 * does not even parse as a URL (it may hold one).
 */
export function withoutPassword(url: string): string | null {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "****";
    for (const name of [...parsed.searchParams.keys()]) {
      if (/pass/i.test(name)) parsed.searchParams.set(name, "****");
    }
    return parsed.toString();
  } catch {
    return null;
  }
}

/** Not secret, but where a private key may be pasted by mistake: never echoed either. */
const KEY_VARIABLES: ReadonlySet<string> = new Set(["JWT_PUBLIC_KEY"]);

function shown(name: string, value: string): string {
  if (SECRETS.has(name) || KEY_VARIABLES.has(name)) return ` (${value.length} characters given; the value is not shown)`;
  if (URLS_WITH_PASSWORD.has(name)) {
    const safe = withoutPassword(value);
    return safe === null ? " (the value is not shown: it may hold a password)" : ` (got ${JSON.stringify(safe)})`;
  }
  return ` (got ${JSON.stringify(value)})`;
}

/** Empty strings count as unset, as compose files and shells often pass them. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const present: Record<string, string> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") present[key] = value;
  }
  const parsed = configSchema.safeParse(present);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? "environment");
    const value = Object.hasOwn(present, name) ? present[name] : undefined;
    return `invalid environment variable ${name}: ${issue.message}${value === undefined ? "" : shown(name, value)}`;
  });
  throw new ConfigError(lines.join("\n"));
}
