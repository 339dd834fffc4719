import { describe, expect, test } from "bun:test";
import { createServer, type Socket } from "node:net";
import { RawUpgradeRefused, RawUpgradeUnanswered, RawWebSocket } from "../src/raw-socket.ts";

/** A TCP server on loopback that answers every request with `answer`, or holds it unanswered when null. */
async function tcpServer(answer: string | null): Promise<{ url: string; close(): void }> {
  const held: Socket[] = [];
  const server = createServer((socket) => {
    held.push(socket);
    socket.on("data", () => {
      if (answer !== null) socket.end(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    close() {
      for (const s of held) s.destroy();
      server.close();
    },
  };
}

describe("RawWebSocket.open", () => {
  test("a server that takes the connection and never answers the upgrade fails it within the bound", async () => {
    const server = await tcpServer(null);
    try {
      const error = await RawWebSocket.open(server.url, {}, 300).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RawUpgradeUnanswered);
    } finally {
      server.close();
    }
  });

  test("a refusal is told apart from no answer", async () => {
    const server = await tcpServer("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    try {
      const error = await RawWebSocket.open(server.url, {}, 30_000).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RawUpgradeRefused);
      expect((error as RawUpgradeRefused).status).toBe(503);
    } finally {
      server.close();
    }
  });
});
