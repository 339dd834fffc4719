import { readFileSync } from "node:fs";
import { createServer } from "node:net";

// Ports the kernel hands out itself (to a bind on port 0, and as the local
// port of every outgoing connection). A port picked there and used a moment
// later may have been handed out in between: a broker on BROKER_PORT=0 took
// a test's Postgres port that way. Below that range only explicit binds
// compete, and freePort() picks among thousands at random.
function ephemeralLow(): number {
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);
    return Number(low) || 32768;
  } catch {
    return 32768;
  }
}

const LOWEST = 10_000;
const ATTEMPTS = 50;

function listenOnce(port: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => (error.code === "EADDRINUSE" || error.code === "EACCES" ? resolve(null) : reject(error)));
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A loopback port that was free a moment ago, below the kernel's ephemeral
 * range where there is room for one (else one the kernel picks).
 */
export async function freePort(): Promise<number> {
  const highest = ephemeralLow() - 1;
  if (highest > LOWEST) {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const port = await listenOnce(LOWEST + Math.floor(Math.random() * (highest - LOWEST + 1)));
      if (port !== null) return port;
    }
  }
  const port = await listenOnce(0);
  if (port === null) throw new Error("no free loopback port");
  return port;
}
