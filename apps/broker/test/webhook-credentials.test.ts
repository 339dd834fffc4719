// A webhook URL with credentials in it (https://user:password@host/…, or a
// token in its query): the broker delivers with them (the stored URL stays
// whole), but shows them to no one: the admin answers (PUT, GET, DELETE)
// give the URL with its user, password and query values replaced by `***`,
// and no log line carries any of them.
import { afterEach, describe, expect, test } from "bun:test";
import { PeerPool, setupMesh, useTestBroker, WebhookReceiver, type SetupMember } from "@switchboard/testkit";
import { sendFrame, sendMany } from "./support/messaging.ts";

const SECRET = "webhook-secret-0123456789";
const USER = "hook-us3r";
const PASSWORD = "pa55-w0rd";
const QUERY_TOKEN = "qu3ry-t0ken";

const pool = new PeerPool();
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  await pool.closeAll();
  await receiver?.stop();
});

describe("a webhook URL with user and password", () => {
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true", WEBHOOK_BACKOFF_MIN_MS: "100", WEBHOOK_BACKOFF_MAX_MS: "200" });

  test("is delivered to with its credentials, and shown and logged without them", async () => {
    // A failure first, so a failed attempt's lines are in the log too.
    receiver = await WebhookReceiver.start((_, index) => ({ status: index === 0 ? 500 : 204 }));
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [sender, hook] = members as [SetupMember, SetupMember];
    const port = new URL(receiver.url).port;
    const path = `/v1/meshes/${mesh.id}/members/${hook.id}/webhook`;
    const shown = `http://***:***@127.0.0.1:${port}/events?x=***`;

    const put = await broker.admin.raw("PUT", path, { url: `http://${USER}:${PASSWORD}@127.0.0.1:${port}/events?x=${QUERY_TOKEN}`, secret: SECRET });
    expect(put.status).toBe(200);
    expect(((await put.json()) as { url: string }).url).toBe(shown);

    const peer = await pool.connect(broker.wsUrl, sender, mesh.id);
    await sendMany(peer, [sendFrame(hook.pubkey)]);
    await receiver.waitFor((reqs) => reqs.length >= 2, 15_000, "a failed request and a delivered one");
    // Delivered with the credentials as they were set.
    expect(receiver.requests[1]!.headers.get("authorization")).toBe(`Basic ${btoa(`${USER}:${PASSWORD}`)}`);
    expect(receiver.requests[1]!.query).toBe(`?x=${QUERY_TOKEN}`);

    const get = await broker.admin.raw("GET", path);
    expect(((await get.json()) as { url: string }).url).toBe(shown);
    const deleted = await broker.admin.raw("DELETE", path);
    expect(((await deleted.json()) as { url: string }).url).toBe(shown);

    await broker.process.waitForLog("webhook", 15_000, (l) => l.memberId === hook.id && l.outcome === "ok");
    expect(broker.process.logs.some((l) => l.msg === "admin webhook set")).toBe(true);
    expect(broker.process.stderrText()).not.toContain(PASSWORD);
    expect(broker.process.stderrText()).not.toContain(USER);
    expect(broker.process.stderrText()).not.toContain(QUERY_TOKEN);
  });

  test("a user alone is hidden too (it is often the token), and every query value with its name kept; a URL with neither is shown as it is", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [tokenOnly, plain] = members as [SetupMember, SetupMember];
    const urlOf = async (member: SetupMember, url: string) => {
      const res = await broker.admin.raw("PUT", `/v1/meshes/${mesh.id}/members/${member.id}/webhook`, { url, secret: SECRET });
      return ((await res.json()) as { url: string }).url;
    };
    expect(await urlOf(tokenOnly, "https://s3cret-t0ken@hooks.example:8443/in")).toBe("https://***@hooks.example:8443/in");
    expect(await urlOf(plain, "https://hooks.example/in?token=s3cret&a=b#frag")).toBe("https://hooks.example/in?token=***&a=***#frag");
    expect(await urlOf(plain, "https://hooks.example/services/in#frag")).toBe("https://hooks.example/services/in#frag");
    // A parameter without a value may be the token itself: hidden whole.
    expect(await urlOf(plain, "https://hooks.example/in?s3cret-t0ken&a=b")).toBe("https://hooks.example/in?***&a=***");
  });
});
