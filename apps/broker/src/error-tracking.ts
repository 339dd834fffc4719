// Optional error reports to Sentry (SENTRY_DSN). What the broker logs at
// error or fatal, and warnings that carry an error (a failed batch, a failed
// sweep), become events with the log line's event name and its plain fields;
// a stop signal is reported too. Events never carry message data: no request
// data, no breadcrumbs, no object or array fields, query parameters cut from
// error messages, and the configured secrets replaced wherever they appear.
// Without SENTRY_DSN the SDK is not even loaded.
import type { ErrorEvent, SeverityLevel } from "@sentry/bun";
import { withoutQueryParams, type LogListener } from "./log.ts";

export interface ErrorTracker {
  /** Fed by the logger with every line at warn or above. */
  readonly logged: LogListener;
  tag(name: string, value: string): void;
  stopping(signal: string, context: Record<string, string | number>): void;
  /** Sends what is queued; resolves within timeoutMs either way. */
  flush(timeoutMs: number): Promise<void>;
}

export interface ErrorTrackingOptions {
  dsn?: string | undefined;
  release: string;
  environment: string;
  /** Values never to send: tokens, database URLs and their passwords. */
  secrets: (string | undefined)[];
}

const DISABLED: ErrorTracker = {
  logged: () => {},
  tag: () => {},
  stopping: () => {},
  flush: async () => {},
};

const SENSITIVE_KEY = /ciphertext|nonce|token|secret|password|authorization|cookie|dsn|url|body|payload/i;
const MAX_FIELD_CHARS = 200;
const REDACTED = "[redacted]";

const LEVELS: Record<number, SeverityLevel> = { 40: "warning", 50: "error", 60: "fatal" };

// While the database is away every frame may fail: a few events of each kind
// a minute tell the story without flooding the project.
const EVENTS_PER_MINUTE = 10;

function eventBudget(perMinute: number): (name: string) => boolean {
  const windows = new Map<string, { start: number; count: number }>();
  return (name) => {
    const now = Date.now();
    const window = windows.get(name);
    if (!window || now - window.start >= 60_000) {
      windows.set(name, { start: now, count: 1 });
      return true;
    }
    window.count += 1;
    return window.count <= perMinute;
  };
}

function passwordOf(value: string): string | undefined {
  try {
    const password = decodeURIComponent(new URL(value).password);
    return password === "" ? undefined : password;
  } catch {
    return undefined;
  }
}

/** The strings an event must never contain: each secret, and the password inside a URL-shaped one. */
export function secretsToRedact(values: (string | undefined)[]): string[] {
  const out = new Set<string>();
  for (const value of values) {
    if (!value) continue;
    out.add(value);
    const password = passwordOf(value);
    if (password) out.add(password);
  }
  // Longest first, so a URL is replaced whole before the password inside it.
  return [...out].sort((a, b) => b.length - a.length);
}

export function scrubText(text: string, secrets: readonly string[]): string {
  let out = withoutQueryParams(text);
  for (const secret of secrets) out = out.replaceAll(secret, REDACTED);
  // Credentials in any other URL (a database the broker was not configured with, say).
  return out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)[^\s@/]+@/gi, `$1${REDACTED}@`);
}

/** A log line's fields as event context: plain values only, nothing that may carry a secret or message data. */
export function safeContext(fields: Record<string, unknown>, secrets: readonly string[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (key === "err" || SENSITIVE_KEY.test(key)) continue;
    if (typeof value === "number" || typeof value === "boolean") out[key] = value;
    else if (typeof value === "string" && value.length <= MAX_FIELD_CHARS) out[key] = scrubText(value, secrets);
  }
  return out;
}

/** Applied to every event before it leaves the process. */
export function scrubEvent(event: ErrorEvent, secrets: readonly string[]): ErrorEvent {
  delete event.request;
  delete event.user;
  delete event.breadcrumbs;
  if (event.message) event.message = scrubText(event.message, secrets);
  if (event.logentry?.message) event.logentry = { message: scrubText(event.logentry.message, secrets) };
  for (const exception of event.exception?.values ?? []) {
    if (exception.value) exception.value = scrubText(exception.value, secrets);
    for (const frame of exception.stacktrace?.frames ?? []) delete frame.vars;
  }
  if (event.extra) event.extra = safeContext(event.extra, secrets);
  return event;
}

export async function startErrorTracking(options: ErrorTrackingOptions): Promise<ErrorTracker> {
  if (!options.dsn) return DISABLED;
  const Sentry = await import("@sentry/bun");
  const secrets = secretsToRedact(options.secrets);
  Sentry.init({
    dsn: options.dsn,
    release: options.release,
    environment: options.environment,
    // Only what is asked for: no global handlers of its own (index.ts logs
    // those, and the log feeds this), no request capture, no tracing.
    defaultIntegrations: false,
    integrations: [Sentry.linkedErrorsIntegration()],
    sendClientReports: false,
    maxBreadcrumbs: 0,
    beforeSend: (event) => scrubEvent(event, secrets),
  });
  const admit = eventBudget(EVENTS_PER_MINUTE);

  return {
    logged(level, fields, msg) {
      const err = fields.err;
      if ((level < 50 && err === undefined) || !admit(msg)) return;
      const context = { level: LEVELS[level] ?? "error", tags: { event: msg }, extra: safeContext(fields, secrets) };
      if (err instanceof Error) Sentry.captureException(err, context);
      else Sentry.captureMessage(err === undefined ? msg : `${msg}: ${String(err)}`, context);
    },
    tag: (name, value) => Sentry.setTag(name, value),
    stopping(signal, context) {
      Sentry.captureMessage("shutdown signal", {
        level: "info",
        tags: { event: "shutdown signal", signal },
        extra: safeContext(context, secrets),
      });
    },
    async flush(timeoutMs) {
      await Sentry.flush(timeoutMs);
    },
  };
}
