// The name the chat page says its user has, in a real Chromium against a real
// broker: the one the others see, the member's first, even when the tab is
// loaded again with another name in its URL (a screenshot under bench/out/).
import { describe, expect, test } from "bun:test";
import { REPO_ROOT } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { enabled, inRoom, newContext, openChat, stage, useStage, WAIT } from "./stage.ts";

useStage();

describe.skipIf(!enabled)("the page's own name", () => {
  test("a tab loaded again with another ?name= is still the member it was: its header gives the name the others see", async () => {
    const page = await openChat(await newContext(), "zed", "lobby");
    await page.goto(`${stage.demo.url}/?name=yan#lobby`);
    await inRoom(page, "lobby");
    // Its own presence, as every other tab shows it.
    await page.waitForSelector('#online li:has-text("zed")', WAIT);
    expect(await page.textContent("#me")).toBe("zed");
    const out = join(REPO_ROOT, "bench", "out");
    mkdirSync(out, { recursive: true });
    await page.screenshot({ path: join(out, "chat-own-name.png") });
  });
});
