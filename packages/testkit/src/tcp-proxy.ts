// A TCP proxy on loopback whose open connections can be frozen: both ends
// stay open and no byte passes either way, as a NAT that forgot the
// connection or a laptop that slept leaves a socket; connections opened
// afterwards are served.
import { connect, createServer, type Socket } from "node:net";

export interface TcpProxy {
  readonly port: number;
  /** The connections open now pass nothing more, and the proxy never closes them (until close()). */
  freezeOpen(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ down: Socket; up: Socket; frozen: boolean }>();
  const server = createServer((down) => {
    const pair = { down, up: connect(targetPort, "127.0.0.1"), frozen: false };
    pairs.add(pair);
    const { up } = pair;
    down.on("data", (chunk) => pair.frozen || up.write(chunk));
    up.on("data", (chunk) => pair.frozen || down.write(chunk));
    for (const [socket, other] of [
      [down, up],
      [up, down],
    ] as const) {
      socket.on("error", () => {});
      socket.on("close", () => {
        if (!pair.frozen) other.destroy();
        if (other.destroyed) pairs.delete(pair);
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no TCP address");
  return {
    port: address.port,
    freezeOpen() {
      for (const pair of pairs) pair.frozen = true;
    },
    async close() {
      for (const { down, up } of pairs) for (const socket of [down, up]) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
