// The chat demo's server without a browser: what its /token signs is what
// the broker takes at the hello, and what it refuses it says why.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKeypair, SwitchboardClient } from "@switchboard/client";
import { useTestBroker } from "@switchboard/testkit";
import { join } from "node:path";
import { startDemo } from "../src/server.ts";

const JWT_SECRET = "jwt-secret-for-the-demo-server-0123456789";

const broker = useTestBroker({ JWT_SECRET });
let demo: Awaited<ReturnType<typeof startDemo>>;
let mesh: string;

beforeAll(async () => {
  mesh = (await broker.admin.createMesh(`demo-${crypto.randomUUID().slice(0, 8)}`)).slug;
  demo = await startDemo({ port: 0, hostname: "127.0.0.1", brokerUrl: broker.url, jwtSecret: JWT_SECRET, mesh, tokenSeconds: 3600 });
});
afterAll(() => demo?.stop());

const askToken = (pubkey: string, name: string) =>
  fetch(`${demo.url}/token`, { method: "POST", body: JSON.stringify({ pubkey, name }) });

describe("chat demo server", () => {
  test("a name the broker could not keep (a NUL, a lone surrogate) gets a 400 saying so, not a token the hello refuses; a good one connects", async () => {
    for (const name of ["ann\u0000", "\ud800ann"]) {
      const { publicKey } = await generateKeypair();
      const res = await askToken(publicKey, name);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toContain("name:");
      // Nor is it vouched for as the key's name.
      expect(await (await fetch(`${demo.url}/names?pubkey=${publicKey}`)).json()).toEqual({});
    }

    const { secretKey, publicKey } = await generateKeypair();
    const res = await askToken(publicKey, "  ann  ");
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const client = await SwitchboardClient.connect({ url: broker.url, meshId: mesh, secretKey, token: () => token, reconnect: false });
    try {
      expect((await client.listPeers()).find((p) => p.pubkey === publicKey)?.displayName).toBe("ann");
    } finally {
      await client.close();
    }
  });

  test("a bad setting stops the server at start with a message naming the variable, not a server whose every token fails", async () => {
    const server = join(import.meta.dir, "..", "src", "server.ts");
    const good = { JWT_SECRET, DEMO_PORT: "0", DEMO_HOST: "127.0.0.1" };
    const bad: Array<[string, Record<string, string>]> = [
      ["DEMO_TOKEN_SECONDS", { DEMO_TOKEN_SECONDS: "an hour" }],
      ["DEMO_TOKEN_SECONDS", { DEMO_TOKEN_SECONDS: "0" }],
      ["DEMO_PORT", { DEMO_PORT: "http" }],
      ["JWT_SECRET", { JWT_SECRET: "too-short-for-the-broker" }],
      ["JWT_SECRET", { JWT_SECRET: `${JWT_SECRET}\n` }],
      ["SWITCHBOARD_URL", { SWITCHBOARD_URL: "127.0.0.1:7900" }],
    ];
    const outcomes = await Promise.all(
      bad.map(async ([variable, env]) => {
        const child = Bun.spawn(["bun", server], { env: { PATH: process.env.PATH ?? "", ...good, ...env }, stdout: "pipe", stderr: "pipe" });
        // A server that started instead is stopped here: the test reads that as the failure it is.
        const started = setTimeout(() => child.kill(), 20_000);
        const code = await child.exited;
        clearTimeout(started);
        return { variable, code, stderr: await new Response(child.stderr).text() };
      }),
    );
    for (const { variable, code, stderr } of outcomes) {
      expect({ variable, code }).toEqual({ variable, code: 78 });
      expect(stderr).toStartWith(`${variable}:`);
    }
  });
});
