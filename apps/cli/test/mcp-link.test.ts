// What a tool says while the server has no connection: why the last try
// failed (a broker that is not running, a clock the broker refuses), so the
// model can tell the user, not only that it is retrying.
import { expect, test } from "bun:test";
import { freePort, newIdentity, setupMesh, useTestBroker, type SetupMember } from "@switchboard/testkit";
import pino from "pino";
import { Writable } from "node:stream";
import { ToolError } from "../src/mcp/errors.ts";
import { BrokerLink } from "../src/mcp/link.ts";

const broker = useTestBroker();

/** A logger, and a promise of its first line with that message. */
function watchedLog(msg: string): { log: pino.Logger; seen: Promise<void> } {
  let seen: () => void = () => {};
  const promise = new Promise<void>((resolve) => (seen = resolve));
  const lines = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (chunk.toString("utf8").includes(`"${msg}"`)) seen();
      done();
    },
  });
  return { log: pino(lines), seen: promise };
}

function unavailable(link: BrokerLink): ToolError {
  try {
    link.client();
  } catch (error) {
    if (error instanceof ToolError) return error;
    throw error;
  }
  throw new Error("the link gave a client");
}

test("before the first connect, a tool's unavailable names the last try's failure", async () => {
  const url = `http://127.0.0.1:${await freePort()}`;
  const identity = await newIdentity();
  const { log, seen } = watchedLog("mcp connect failed");
  const link = new BrokerLink({ url, meshId: "m", secretKey: identity.secretKey, sessionId: "s" }, log, () => {});
  const starting = link.start();
  try {
    await seen;
    const { code, message } = unavailable(link);
    expect(code).toBe("unavailable");
    expect(message).toStartWith("not connected to the broker yet; retrying in the background (last try: unreachable: cannot connect to ");
    expect(message).toContain(url.replace("http", "ws"));
  } finally {
    await link.stop();
    await starting;
  }
});

test("while reconnecting, a tool's unavailable names the last reconnect's failure", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
  const [alice] = members as [SetupMember];
  const { log, seen } = watchedLog("mcp reconnect failed");
  const link = new BrokerLink({ url: broker.url, meshId: mesh.id, secretKey: alice.identity.secretKey, sessionId: "s" }, log, () => {});
  try {
    await link.start();
    expect(link.client().connected).toBe(true);
    await broker.stop();
    await seen;
    const { code, message } = unavailable(link);
    expect(code).toBe("unavailable");
    expect(message).toStartWith("the connection to the broker is down; reconnecting in the background (last try: unreachable: ");
  } finally {
    await link.stop();
  }
});
