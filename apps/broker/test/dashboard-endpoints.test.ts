// docs/protocol.md "Dashboard endpoints (added)": the shapes of the overview,
// of a mesh's members with their live presences, and of the presence stream's
// events, from a real broker over real HTTP.
import { afterAll, describe, expect, test } from "bun:test";
import { PeerPool, setupMesh, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { ISO } from "./support/messaging.ts";

const pool = new PeerPool();
afterAll(() => pool.closeAll());

describe("dashboard endpoints", () => {
  const broker = useTestBroker();
  const get = async (path: string) => {
    const res = await fetch(`${broker.url}${path}`, { headers: { authorization: `Bearer ${broker.adminToken}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  };

  async function liveMesh() {
    const setup = await setupMesh(broker.admin, { members: ["ada", "gone"] });
    const [ada, gone] = setup.members as [SetupMember, SetupMember];
    await broker.admin.revokeMember(setup.mesh.id, gone.id);
    const peer = await pool.connect(broker.wsUrl, ada, setup.mesh.id);
    await peer.request({ type: "join", channel: "#room" });
    return { ...setup, ada, peer };
  }

  test("the overview: meshes, live instances, rooms and the queue's samples", async () => {
    const { mesh } = await liveMesh();
    const { instanceId } = (await (await fetch(`${broker.url}/health`)).json()) as { instanceId: string };
    const overview = await get("/v1/admin/overview");
    expect((overview.meshes as Array<Record<string, unknown>>).find((m) => m.id === mesh.id)).toEqual({ id: mesh.id, slug: mesh.slug, name: expect.any(String), members: 1, presences: 1 });
    expect((overview.instances as Array<Record<string, unknown>>).find((i) => i.id === instanceId)).toEqual({
      id: instanceId,
      hostname: expect.any(String),
      pid: broker.process.pid,
      startedAt: expect.stringMatching(ISO),
      leaseRemainingSeconds: expect.any(Number),
      leaseAgeSeconds: expect.any(Number),
      presences: expect.any(Number),
    });
    expect((overview.rooms as Array<Record<string, unknown>>).filter((r) => r.meshId === mesh.id)).toEqual([
      { meshId: mesh.id, meshSlug: mesh.slug, channel: "#room", members: 1, connections: 1 },
    ]);
    expect(overview.roomsMore).toBe(false);
    expect(overview.queue).toEqual({ sampleSeconds: expect.any(Number), sends: expect.any(Array), depth: expect.any(Array) });
  });

  test("a mesh's members: the non-revoked ones, each with its live presences", async () => {
    const { mesh, ada, peer } = await liveMesh();
    const listed = await get(`/v1/admin/meshes/${mesh.slug}/members`);
    expect(listed).toEqual({
      members: [
        {
          memberId: ada.id,
          pubkey: ada.pubkey,
          displayName: "ada",
          role: "member",
          presences: [
            {
              presenceId: peer.helloAck?.presenceId,
              sessionId: peer.sessionId,
              displayName: "ada",
              status: "idle",
              statusSource: expect.stringMatching(/^(hook|manual|jsonl)$/),
              connectedAt: expect.stringMatching(ISO),
              instanceId: expect.any(String),
            },
          ],
        },
      ],
    });
  });

  test("the presence stream: server-sent presence events, the snapshot first", async () => {
    const { mesh, ada, peer } = await liveMesh();
    const res = await fetch(`${broker.url}/v1/admin/meshes/${mesh.id}/presence-events`, {
      headers: { authorization: `Bearer ${broker.adminToken}` },
      signal: AbortSignal.timeout(10_000),
    });
    expect([res.status, res.headers.get("content-type")?.split(";")[0]]).toEqual([200, "text/event-stream"]);
    const reader = res.body!.getReader();
    let text = "";
    while (!/event: presence\ndata: .*\n\n/.test(text)) {
      const chunk = await reader.read();
      if (chunk.done) throw new Error(`the stream ended before its first event: ${text}`);
      text += new TextDecoder().decode(chunk.value);
    }
    await reader.cancel();
    const data = /event: presence\ndata: (.*)\n\n/.exec(text)![1]!;
    expect(JSON.parse(data)).toEqual({
      event: "joined",
      presenceId: peer.helloAck?.presenceId,
      pubkey: ada.pubkey,
      displayName: "ada",
      sessionId: peer.sessionId,
      status: "idle",
    });
  });
});
