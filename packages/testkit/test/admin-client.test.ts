// The test admin client opens a connection per request: a kept-alive one,
// idle through a long test, could be closed by the broker's idle timeout just
// as the next request goes out on it. And each request is bounded in time.
import { expect, test } from "bun:test";
import { AdminClient } from "../src/admin-client.ts";

test("every admin request has a connection of its own", async () => {
  const ports: number[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, srv) {
      ports.push(srv.requestIP(req)!.port);
      return Response.json({ peers: [] });
    },
  });
  try {
    const admin = new AdminClient(`http://127.0.0.1:${server.port}`, "token");
    for (let i = 0; i < 3; i++) await admin.peers("demo");
    expect({ requests: ports.length, connections: new Set(ports).size }).toEqual({ requests: 3, connections: 3 });
  } finally {
    await server.stop(true);
  }
});

test("a request the broker never answers fails with the request named, once its time is up", async () => {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Promise<Response>(() => {}) });
  try {
    const admin = new AdminClient(`http://127.0.0.1:${server.port}`, "token", 200);
    await expect(admin.peers("demo")).rejects.toThrow("GET /v1/meshes/demo/peers: no answer within 200 ms");
  } finally {
    await server.stop(true);
  }
}, 10_000);
