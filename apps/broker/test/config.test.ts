import { describe, expect, test } from "bun:test";
import { spawnRaw } from "@switchboard/testkit";
import { importSPKI } from "jose";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config.ts";

describe("configuration", () => {
  test("defaults match the contract", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      BROKER_PORT: 7900,
      HOST: "0.0.0.0",
      DATA_DIR: "./.switchboard",
      STATUS_TTL_SECONDS: 60,
      HOOK_FRESH_WINDOW_SECONDS: 30,
      MAX_CONNECTIONS_PER_MESH: 100,
      MAX_CONNECTIONS_PER_MEMBER: 50,
      MAX_MESSAGE_BYTES: 65536,
      HOOK_RATE_LIMIT_PER_MIN: 30,
      SEND_RATE_LIMIT_PER_MIN: 6000,
      LEASE_SECONDS: 30,
      MESSAGE_TTL_SECONDS: 604800,
      AUDIT_RETENTION_SECONDS: 2592000,
      ENDED_PRESENCE_RETENTION_SECONDS: 86400,
      NODE_ENV: "development",
    });
    expect(config.DATABASE_URL).toBeUndefined();
  });

  test("numbers are digits: a blank, hex or exponent value is refused, not read as another number", () => {
    for (const value of [" ", "0x1F90", "7e3", "80.5", "8080 "]) {
      expect(() => loadConfig({ BROKER_PORT: value })).toThrow("invalid environment variable BROKER_PORT: expected a whole number");
    }
    expect(loadConfig({ BROKER_PORT: "8080" }).BROKER_PORT).toBe(8080);
    expect(() => loadConfig({ BROKER_PORT: "70000" })).toThrow("expected at most 65535");
  });

  test("a token with whitespace (a space, a secret file's trailing newline) is refused: no Authorization header could carry it", () => {
    for (const name of ["ADMIN_TOKEN", "METRICS_TOKEN"]) {
      for (const value of ["correct horse battery staple", "abcdefghijklmnopqrstuvwx\n"]) {
        expect(() => loadConfig({ [name]: value })).toThrow(`invalid environment variable ${name}: contains whitespace`);
      }
    }
    expect(loadConfig({ METRICS_TOKEN: "abcdefghijklmnopqrstuvwx" }).METRICS_TOKEN).toBe("abcdefghijklmnopqrstuvwx");
  });

  test("a token beyond printable ASCII is refused: fetch cannot send it, and curl sends other characters than the broker reads", () => {
    for (const name of ["ADMIN_TOKEN", "METRICS_TOKEN"]) {
      for (const value of ["admin-token-\u{1F600}-0123456789", "admin-t\u00f6k\u00e9n-0123456789"]) {
        expect(() => loadConfig({ [name]: value })).toThrow(`invalid environment variable ${name}: holds a character outside printable ASCII`);
      }
    }
    expect(loadConfig({ ADMIN_TOKEN: "A-z_0.9~+/=!#$%&'*" }).ADMIN_TOKEN).toBe("A-z_0.9~+/=!#$%&'*");
  });

  test("empty values count as unset", () => {
    expect(loadConfig({ BROKER_PORT: "", DATABASE_URL: "" }).BROKER_PORT).toBe(7900);
  });

  test.each([
    ["BROKER_PORT", "seventy"],
    ["BROKER_PORT", "70000"],
    ["DATABASE_URL", "mysql://x@y/z"],
    ["DATABASE_URL", "postgres://switchboard@db:notaport/x"],
    ["DATABASE_URL", "postgres://switchboard@db:99999/x"],
    ["DATABASE_URL", "postgres://switchboard:p%ZZw@db/x"],
    ["MAX_CONNECTIONS_PER_MESH", "0"],
    ["LEASE_SECONDS", "1.5"],
    ["LOG_LEVEL", "loud"],
    ["ADMIN_TOKEN", "short"],
    ["JWT_SECRET", "too-short-for-hs256"],
    ["JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----"],
    ["CORS_ORIGINS", "https://app.example.com/path"],
    ["CORS_ORIGINS", "app.example.com"],
    ["HISTORY_RETENTION_SECONDS", "0"],
    ["AUDIT_RETENTION_SECONDS", "0"],
    ["AUDIT_RETENTION_SECONDS", "30d"],
    ["ENDED_PRESENCE_RETENTION_SECONDS", "7199"],
    ["ENDED_PRESENCE_RETENTION_SECONDS", "2147483648"],
    ["HISTORY_MAX_PER_CHANNEL", "0"],
    ["HISTORY_MAX_PER_CHANNEL", "-5"],
    ["HISTORY_MAX_PER_CHANNEL", "2.5"],
    ["HISTORY_MAX_PER_CHANNEL", "1e3"],
    ["HISTORY_MAX_PER_CHANNEL", "many"],
    ["HISTORY_MAX_PER_CHANNEL", "2147483648"],
    ["DASHBOARD", "maybe"],
    ["SENTRY_DSN", "not a url"],
    ["SENTRY_DSN", "ftp://key@sentry.example.com/1"],
  ])("%s=%s is refused, naming the variable", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(`invalid environment variable ${name}`);
  });

  test("a JWT_SECRET with whitespace at an end (a secret file's newline) is refused; one inside is kept", () => {
    const secret = "jwt-secret-0123456789-0123456789-abc";
    for (const value of [`${secret}\n`, ` ${secret}`]) {
      expect(() => loadConfig({ JWT_SECRET: value })).toThrow("invalid environment variable JWT_SECRET: begins or ends with whitespace");
    }
    expect(loadConfig({ JWT_SECRET: `${secret} with words` }).JWT_SECRET).toBe(`${secret} with words`);
  });

  test("WEBHOOK_BACKOFF_MIN_MS above WEBHOOK_BACKOFF_MAX_MS is refused rather than ignored", () => {
    expect(() => loadConfig({ WEBHOOK_BACKOFF_MIN_MS: "5000", WEBHOOK_BACKOFF_MAX_MS: "1000" })).toThrow(
      "invalid environment variable WEBHOOK_BACKOFF_MIN_MS: 5000 is more than WEBHOOK_BACKOFF_MAX_MS (1000)",
    );
    expect(loadConfig({ WEBHOOK_BACKOFF_MIN_MS: "1000", WEBHOOK_BACKOFF_MAX_MS: "1000" }).WEBHOOK_BACKOFF_MAX_MS).toBe(1000);
  });

  test("MAX_MESSAGE_BYTES must fit twice in INSTANCE_INFLIGHT_BYTES: request bodies may take half of it, and a larger one would be refused for good", () => {
    expect(() => loadConfig({ MAX_MESSAGE_BYTES: "1048576", INSTANCE_INFLIGHT_BYTES: "2097151" })).toThrow(
      "invalid environment variable INSTANCE_INFLIGHT_BYTES: 2097151 holds fewer than two messages of MAX_MESSAGE_BYTES (1048576); request bodies may take half of it",
    );
    expect(loadConfig({ MAX_MESSAGE_BYTES: "1048576", INSTANCE_INFLIGHT_BYTES: "2097152" }).INSTANCE_INFLIGHT_BYTES).toBe(2097152);
  });

  test("HELLO_AUDIENCES: hosts as a URL names them, lower-cased; anything else is refused naming it", () => {
    expect(loadConfig({ HELLO_AUDIENCES: " Broker.Example.com , 127.0.0.1:7900,[::1]:7900,broker.example.com:443" }).HELLO_AUDIENCES).toEqual([
      "broker.example.com",
      "127.0.0.1:7900",
      "[::1]:7900",
      "broker.example.com:443",
    ]);
    expect(loadConfig({}).HELLO_AUDIENCES).toBeUndefined();
    for (const bad of ["https://broker.example.com", "broker.example.com/ws", "user@broker.example.com", ","]) {
      expect(() => loadConfig({ HELLO_AUDIENCES: bad })).toThrow(/^invalid environment variable HELLO_AUDIENCES: /);
    }
  });

  test("ENDED_PRESENCE_RETENTION_SECONDS under two hours is refused, saying so: a catch-up must still find a replaced presence ended", () => {
    expect(() => loadConfig({ ENDED_PRESENCE_RETENTION_SECONDS: "3600" })).toThrow(
      "invalid environment variable ENDED_PRESENCE_RETENTION_SECONDS: expected at least 7200",
    );
    expect(loadConfig({ ENDED_PRESENCE_RETENTION_SECONDS: "7200", AUDIT_RETENTION_SECONDS: "1" })).toMatchObject({
      ENDED_PRESENCE_RETENTION_SECONDS: 7200,
      AUDIT_RETENTION_SECONDS: 1,
    });
  });

  test("the browser variables: keys, origins, retention, dashboard", () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const config = loadConfig({
      JWT_PUBLIC_KEY: pem.replaceAll("\n", "\\n"),
      CORS_ORIGINS: "https://app.example.com, http://127.0.0.1:7901",
      HISTORY_RETENTION_SECONDS: "86400",
      DASHBOARD: "false",
    });
    expect(config.JWT_PUBLIC_KEY).toEqual({ pem, alg: "EdDSA" });
    expect(config.CORS_ORIGINS).toEqual(["https://app.example.com", "http://127.0.0.1:7901"]);
    expect(config.HISTORY_RETENTION_SECONDS).toBe(86400);
    expect(config.DASHBOARD).toBe(false);
    expect(loadConfig({}).DASHBOARD).toBe(true);
    expect(loadConfig({}).HISTORY_RETENTION_SECONDS).toBeUndefined();
  });

  test("HISTORY_MAX_PER_CHANNEL: unset (or empty) is no bound by count; a whole number from 1 is the bound", () => {
    expect(loadConfig({}).HISTORY_MAX_PER_CHANNEL).toBeUndefined();
    expect(loadConfig({ HISTORY_MAX_PER_CHANNEL: "" }).HISTORY_MAX_PER_CHANNEL).toBeUndefined();
    expect(loadConfig({ HISTORY_MAX_PER_CHANNEL: "1" }).HISTORY_MAX_PER_CHANNEL).toBe(1);
    expect(loadConfig({ HISTORY_MAX_PER_CHANNEL: "10000" }).HISTORY_MAX_PER_CHANNEL).toBe(10000);
  });

  test.each([
    ["ADMIN_TOKEN", "short-secret"],
    ["JWT_SECRET", "short-jwt-secret"],
    ["DATABASE_URL", "mysql://user:hunter2-password@db/x"],
    ["DATABASE_URL", "postgres://user:hunter2-password@db:notaport/x"],
    ["DATABASE_URL", "postgres://user:hunter2-password@db:99999/x"],
    ["SENTRY_DSN", "ftp://key-0123456789@sentry.example.com/1"],
  ])("an invalid %s is named without echoing its value", (name, value) => {
    let message = "";
    try {
      loadConfig({ [name]: value });
    } catch (error) {
      message = String(error);
    }
    expect(message).toContain(`invalid environment variable ${name}`);
    expect(message).not.toContain(value);
  });

  test("database URLs the driver reads are taken: several hosts, an escaped password, IPv6, no user", () => {
    for (const url of [
      "postgres://u:p@db-1:5432,db-2:5433/switchboard",
      "postgresql://u:p%40ss@localhost/switchboard",
      "postgres://u@[::1]:5432/switchboard",
      "postgres://localhost",
    ]) {
      expect(loadConfig({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
    }
  });

  test("a database URL with a bad port stops the process naming the variable, its password not written", async () => {
    const proc = spawnRaw({ DATABASE_URL: "postgres://switchboard:hunter2-password@127.0.0.1:notaport/x" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(78);
    expect(stderr).toContain("invalid environment variable DATABASE_URL");
    expect(stderr).not.toContain("hunter2");
  });

  test("a JWT_PUBLIC_KEY given as PKCS#1 or inside a certificate is taken as its SPKI key, which the verifier imports", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    const spki = rsa.export({ type: "spki", format: "pem" }).toString();
    expect(loadConfig({ JWT_PUBLIC_KEY: rsa.export({ type: "pkcs1", format: "pem" }).toString() }).JWT_PUBLIC_KEY).toEqual({ pem: spki, alg: "RS256" });
    const fromCertificate = loadConfig({ JWT_PUBLIC_KEY: ED25519_CERTIFICATE }).JWT_PUBLIC_KEY;
    expect(fromCertificate).toEqual({ pem: ED25519_CERTIFICATE_KEY, alg: "EdDSA" });
    // The start imported what it was given as SPKI: anything else stopped it with exit 1 and no variable named.
    for (const { pem, alg } of [loadConfig({ JWT_PUBLIC_KEY: spki }).JWT_PUBLIC_KEY!, fromCertificate!]) await importSPKI(pem, alg);
  });

  test("a private key in JWT_PUBLIC_KEY is refused, and the message never shows it", () => {
    const privates = [
      generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString(),
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    ];
    for (const pem of privates) {
      expect(() => loadConfig({ JWT_PUBLIC_KEY: pem })).toThrow(
        `invalid environment variable JWT_PUBLIC_KEY: a private key; give its public key (openssl pkey -pubout), and keep the private key secret (${pem.length} characters given; the value is not shown)`,
      );
    }
    // Nor is a value that is no key at all.
    expect(() => loadConfig({ JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----" })).toThrow("(61 characters given; the value is not shown)");
  });

  // jose verifies RS256 only with keys of 2048 bits or more: a shorter one refused every token as not verifying.
  test("an RSA JWT_PUBLIC_KEY under 2048 bits stops the start naming the variable; one of 2048 is taken", async () => {
    const pemOf = (bits: number) =>
      generateKeyPairSync("rsa", { modulusLength: bits }).publicKey.export({ type: "spki", format: "pem" }).toString();
    const dataDir = mkdtempSync(join(tmpdir(), "sb-config-"));
    const proc = spawnRaw({ JWT_PUBLIC_KEY: pemOf(1024), DATA_DIR: dataDir });
    // A broker that takes the key serves on: it is stopped, not waited for.
    const code = await Promise.race([proc.exited, Bun.sleep(30_000).then(() => "still running")]);
    if (code === "still running") proc.kill("SIGKILL");
    const stderr = await new Response(proc.stderr).text();
    await proc.exited;
    rmSync(dataDir, { recursive: true, force: true });
    expect(code).toBe(78);
    expect(stderr).toContain("invalid environment variable JWT_PUBLIC_KEY: an RSA key of 1024 bits; RS256 needs 2048 or more");
    const pem = pemOf(2048);
    expect(loadConfig({ JWT_PUBLIC_KEY: pem }).JWT_PUBLIC_KEY).toEqual({ pem, alg: "RS256" });
  });

  test("a bad value stops the process with a line naming the variable", async () => {
    const proc = spawnRaw({ STATUS_TTL_SECONDS: "-5" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).not.toBe(0);
    expect(stderr).toContain("invalid environment variable STATUS_TTL_SECONDS");
  });

  test("a port in use stops the start also with DATABASE_URL set (it was retried as a database outage)", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const proc = spawnRaw({ DATABASE_URL: "postgres://switchboard@127.0.0.1:1/none", HOST: "127.0.0.1", BROKER_PORT: String(holder.port) });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
      const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(timer);
      expect({ code: code === 0 ? "zero" : proc.signalCode ?? "non-zero", retried: stderr.includes("db ping failed") }).toEqual({ code: "non-zero", retried: false });
      expect(stderr).toContain(`cannot listen on HOST=127.0.0.1 BROKER_PORT=${holder.port}`);
    } finally {
      holder.stop(true);
    }
  });

  test("an address this machine does not have stops the start naming HOST", async () => {
    // 192.0.2.0/24 is reserved for documentation: no machine has it.
    // The port opens before the database answers: none is needed to get there.
    const proc = spawnRaw({ DATABASE_URL: "postgres://switchboard@127.0.0.1:1/none", HOST: "192.0.2.1", BROKER_PORT: "0" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    expect(code).toBe(1);
    expect(stderr).toContain("cannot listen on HOST=192.0.2.1 BROKER_PORT=0");
  });
});

/** A self-signed Ed25519 certificate, and the public key it holds. */
const ED25519_CERTIFICATE = `-----BEGIN CERTIFICATE-----
MIIBTDCB/6ADAgECAhRGa6gReGJN7sM+MBMueFiXKlIUzTAFBgMrZXAwGzEZMBcG
A1UEAwwQc3dpdGNoYm9hcmQtdGVzdDAgFw0yNjEyMDcwMDE3MzRaGA8yMTI2MTEx
MzAwMTczNFowGzEZMBcGA1UEAwwQc3dpdGNoYm9hcmQtdGVzdDAqMAUGAytlcAMh
AOysy8kALSPQvNfb+vfiIH0HACOGdClhj4xH5petIkWko1MwUTAdBgNVHQ4EFgQU
cnEUlwTiXxVb/tV0IEDP7ucUCQQwHwYDVR0jBBgwFoAUcnEUlwTiXxVb/tV0IEDP
7ucUCQQwDwYDVR0TAQH/BAUwAwEB/zAFBgMrZXADQQD+2GPXpsLKwUintpC1in8S
tjKLxTlueNEQTkY2WfWy698spt8SZ75UTWf8l6TZvv7tjfWowykvY803zNbb8Z4N
-----END CERTIFICATE-----
`;
const ED25519_CERTIFICATE_KEY = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA7KzLyQAtI9C819v69+IgfQcAI4Z0KWGPjEfml60iRaQ=
-----END PUBLIC KEY-----
`;
