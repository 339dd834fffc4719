// The /ws endpoint. Frames of one connection are handled strictly in order:
// each frame is chained behind the previous one's promise.
import type { ServerWebSocket, WebSocketHandler } from "bun";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";

const HELLO_TIMEOUT_MS = 10_000;

export interface SocketData {
  connectionId: string;
  openedAt: number;
  helloTimer?: Timer;
  chain: Promise<void>;
}

type Socket = ServerWebSocket<SocketData>;

export function createWsHandler(deps: { log: Logger; metrics: Metrics; maxMessageBytes: number }) {
  const { log, metrics } = deps;
  const open = new Set<Socket>();

  const refuse = (ws: Socket, code: string, message: string) => {
    metrics.connectionsRejected.labels(code).inc();
    ws.send(JSON.stringify({ type: "error", code, message }));
    ws.close(1008, code);
  };

  const handlers: WebSocketHandler<SocketData> = {
    maxPayloadLength: deps.maxMessageBytes,
    open(ws) {
      open.add(ws);
      ws.data.helloTimer = setTimeout(() => refuse(ws, "hello_timeout", "no hello within 10 s"), HELLO_TIMEOUT_MS);
    },
    message(ws) {
      ws.data.chain = ws.data.chain.then(() => refuse(ws, "no_hello", "the first frame must be a hello"));
    },
    close(ws, code) {
      clearTimeout(ws.data.helloTimer);
      open.delete(ws);
      log.info({ connectionId: ws.data.connectionId, code }, "ws close");
    },
  };

  return {
    handlers,
    newSocketData: (): SocketData => ({
      connectionId: crypto.randomUUID(),
      openedAt: Date.now(),
      chain: Promise.resolve(),
    }),
    closeAll(code: number, reason: string) {
      for (const ws of open) ws.close(code, reason);
    },
  };
}
