// A server that accepts a connection and closes it during the handshake,
// without an error (a TCP proxy in front of a Postgres that is down): the
// pool's connect fails and the query that asked for it fails with it. The
// driver used to keep that query and connect again and again, so a send
// waited until the server was back instead of being answered.
import { afterAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createServer, type Socket } from "node:net";
import { connect, errorCode } from "../src/index.ts";

const sockets = new Set<Socket>();
let accepted = 0;
// Reads the startup message, then ends the connection cleanly (FIN, no reset).
const closing = createServer((socket) => {
  accepted++;
  sockets.add(socket);
  socket.on("error", () => {});
  socket.once("data", () => socket.end());
});
await new Promise<void>((resolve) => closing.listen(0, "127.0.0.1", resolve));
const { port } = closing.address() as { port: number };
afterAll(() => {
  for (const s of sockets) s.destroy();
  closing.close();
});

test("a query whose connection is closed during its handshake fails, instead of waiting through reconnects", async () => {
  const db = await connect({ databaseUrl: `postgres://postgres@127.0.0.1:${port}/postgres`, dataDir: "" });
  try {
    // Far longer than a connect takes: the query waited as long as the server stayed this way.
    const outcome = await Promise.race([
      db.rows(sql`SELECT 1`).then(
        () => "answered",
        (error: unknown) => `failed: ${errorCode(error)}`,
      ),
      Bun.sleep(20_000).then(() => "still waiting"),
    ]);
    expect(outcome).toBe("failed: CONNECTION_CLOSED");
    expect(accepted).toBeGreaterThan(0);
  } finally {
    await Promise.race([db.close(), Bun.sleep(2000)]);
  }
});
