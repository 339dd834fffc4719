import { describe, expect, test } from "bun:test";
import { createServer, type Socket } from "node:net";
import { RawUpgradeRefused, RawUpgradeUnanswered, RawWebSocket } from "../src/raw-socket.ts";

/** A TCP server on loopback that meets each connection's first bytes (the upgrade request) with `onRequest`. */
async function tcpServer(onRequest: (socket: Socket) => void): Promise<{ url: string; close(): void }> {
  const held: Socket[] = [];
  const server = createServer((socket) => {
    held.push(socket);
    socket.once("data", () => onRequest(socket));
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
    const server = await tcpServer(() => {});
    try {
      const error = await RawWebSocket.open(server.url, {}, 300).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RawUpgradeUnanswered);
    } finally {
      server.close();
    }
  });

  test("a refusal is told apart from no answer", async () => {
    const server = await tcpServer((socket) => socket.end("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"));
    try {
      const error = await RawWebSocket.open(server.url, {}, 30_000).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RawUpgradeRefused);
      expect((error as RawUpgradeRefused).status).toBe(503);
    } finally {
      server.close();
    }
  });
});

describe("RawWebSocket.close", () => {
  test("a connection that ends without a close frame is closed 1006, so a wait for the close ends with it", async () => {
    const server = await tcpServer((socket) => {
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
      setTimeout(() => socket.destroy(), 100);
    });
    try {
      const ws = await RawWebSocket.open(server.url);
      expect(ws.close).toBeNull();
      const close = await ws.waitFor(() => ws.close ?? undefined, 10_000, "the close");
      expect(close.code).toBe(1006);
    } finally {
      server.close();
    }
  });
});
