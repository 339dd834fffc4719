// The connection indicator of the chat page, in a real Chromium against a
// real broker: a page that has never been connected says it is connecting,
// however many attempts fail, not that it is connecting again (a screenshot
// under bench/out/).
import { describe, expect, test } from "bun:test";
import { REPO_ROOT } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { enabled, newContext, recordStatesFromLoad, stage, useStage, WAIT } from "./stage.ts";

useStage();

describe.skipIf(!enabled)("connection indicator", () => {
  test("a page the broker has never let in says connecting through its failed attempts, never reconnecting", async () => {
    const page = await (await newContext()).newPage();
    const states = await recordStatesFromLoad(page);
    // An origin CORS_ORIGINS does not list: every attempt is refused, with a token each time.
    await page.goto(`${stage.demo.url.replace("127.0.0.1", "localhost")}/?name=nia#lobby`);
    // Said once three attempts have failed at the broker.
    await page.waitForFunction(`/after \\d+ tries/.test(document.getElementById("problem").textContent)`, undefined, WAIT);
    expect(await states()).not.toContain("reconnecting");
    expect(await page.textContent("#connection")).toBe("connecting");
    const out = join(REPO_ROOT, "bench", "out");
    mkdirSync(out, { recursive: true });
    await page.screenshot({ path: join(out, "chat-never-connected.png") });
  });
});
