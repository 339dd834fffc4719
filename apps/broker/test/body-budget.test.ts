// Request bodies count against INSTANCE_INFLIGHT_BYTES with the frames the
// sockets read, from their reading until their request is answered. Without
// it, many large bodies at once were held whatever their sum (48 bodies of
// 16 MiB took 4 GB): now bodies may take half of it, one past that is
// refused 503 with Retry-After, and the bytes are given back at the answers.
// Half, since a socket paused for the budget resumes below half: bodies held
// above it would keep such a socket unread while their requests last.
import { afterAll, describe, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { connect, type Socket } from "node:net";
import { httpBody } from "./support/http-api.ts";

const MIB = 1024 * 1024;
const broker = useTestBroker({ MAX_MESSAGE_BYTES: String(MIB / 2), INSTANCE_INFLIGHT_BYTES: String(MIB) });
const sockets: Socket[] = [];
afterAll(() => sockets.forEach((s) => s.destroy()));

/** A POST /v1/messages written by hand, so that part of its body can be held back; its answer once the server closes. */
async function openPost(token: string, body: string): Promise<{ socket: Socket; answer: Promise<{ status: number; head: string; body: string }> }> {
  const url = new URL(broker.url);
  const socket = connect(Number(url.port), url.hostname);
  sockets.push(socket);
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  const answer = new Promise<{ status: number; head: string; body: string }>((resolve) => {
    socket.once("close", () => {
      const [head = "", rest = ""] = Buffer.concat(chunks).toString("utf8").split("\r\n\r\n", 2);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body: rest });
    });
  });
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  const length = Buffer.byteLength(body);
  socket.write(
    `POST /v1/messages HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`,
  );
  return { socket, answer };
}

const write = (socket: Socket, text: string) => new Promise<void>((resolve) => socket.write(text, () => resolve()));

describe("request bodies under INSTANCE_INFLIGHT_BYTES", () => {
  test("a body that would take bodies past half the bound while another is held is refused 503; sockets are read meanwhile; once answered, the next is taken", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = await broker.admin.createApiToken(mesh.id, app.id);
    // 0.3 MiB each: two pass half the bound of 1 MiB, one alone does not.
    // Trailing spaces (JSON allows them) are what the held request writes last.
    const big = () => `${JSON.stringify(httpBody(runner.pubkey, { ciphertext: Buffer.alloc(225 * 1024, 7).toString("base64") }))}${" ".repeat(64)}`;
    /** A request whose body is sent but for its last 64 bytes (spaces), and whether it was answered meanwhile. */
    const hold = async () => {
      const body = big();
      const post = await openPost(token, body);
      const held = { ...post, answered: false };
      void post.answer.then(() => (held.answered = true));
      await write(post.socket, body.slice(0, -64));
      return held;
    };
    let first = await hold();
    // The first is kept alive past the server's idle timeout of 10 s: a space of its tail a second.
    let tail = 64;
    const trickle = setInterval(() => {
      if (tail > 1) first.socket.write(" ", () => {});
      if (tail > 1) tail--;
    }, 1000);

    // Until the first's bytes are counted, a second may still get in: each is sent whole, and stored. On a busy
    // machine the second may be read first (the first still at its token's lookup), and the first is then the body
    // refused, held no more: another is held in its place.
    const refused = await waitUntil(
      async () => {
        if (first.answered) {
          first = await hold();
          tail = 64;
        }
        const body = big();
        const other = await openPost(token, body);
        await write(other.socket, body);
        const answer = await other.answer;
        return answer.status === 503 ? answer : undefined;
      },
      20_000,
      "a body refused while the first is held",
    ).finally(() => clearInterval(trickle));
    expect(first.answered).toBe(false);
    expect(refused.head.toLowerCase()).toContain("retry-after: 1");
    expect(JSON.parse(refused.body)).toEqual({
      error: {
        code: "unavailable",
        message: "the broker holds as many request bodies and frames as it takes (INSTANCE_INFLIGHT_BYTES); try again shortly",
      },
    });

    // Frames that take the instance past its bound pause their socket; it resumes, the body still held.
    const peer = await TestPeer.connect(broker.wsUrl, { identity: runner.identity, meshId: mesh.id });
    const frame = Buffer.alloc(330 * 1024, 9).toString("base64");
    const acks = [peer.send(app.pubkey, { ciphertext: frame }), peer.send(app.pubkey, { ciphertext: frame })];
    expect((await Promise.all(acks)).map((a) => a.type)).toEqual(["ack", "ack"]);
    expect((await peer.request({ type: "ping" })).type).toBe("pong");
    await peer.close();

    // The rest of the first: it is stored, and its bytes given back.
    await write(first.socket, " ".repeat(tail));
    expect((await first.answer).status).toBe(201);
    const body = big();
    const next = await openPost(token, body);
    await write(next.socket, body);
    expect((await next.answer).status).toBe(201);
  });
});
