// The chat page's frame in a real Chromium against a real broker: however
// many lines a room holds, the message list scrolls within the page and the
// page itself does not, on a phone as on a desktop (a screenshot of the whole
// page under bench/out/ shows no blank space below it).
import { describe, expect, test } from "bun:test";
import { REPO_ROOT } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { allShown, enabled, newContext, openChat, programPeer, useStage } from "./stage.ts";

useStage();

/** How far the page is taller than its window: 0 when nothing but the lists scrolls. */
const pageScroll = (page: { evaluate(code: string): Promise<unknown> }) => page.evaluate("document.documentElement.scrollHeight - window.innerHeight") as Promise<number>;

describe.skipIf(!enabled)("the chat page's frame", () => {
  test("a room of many lines scrolls its list, not the page: no blank page below the composer", async () => {
    const { client } = await programPeer("random");
    const sent = Array.from({ length: 40 }, (_, i) => `line ${i + 1} of a long conversation`);
    for (const text of sent) await client.send("#random", { text });
    const desktop = await openChat(await newContext({ viewport: { width: 1280, height: 720 } }), "max", "random");
    const phone = await openChat(await newContext({ viewport: { width: 390, height: 700 }, isMobile: true, hasTouch: true }), "mo", "random");
    for (const page of [desktop, phone]) {
      await allShown(page, sent);
      expect(await pageScroll(page)).toBeLessThanOrEqual(0);
    }
    const out = join(REPO_ROOT, "bench", "out");
    mkdirSync(out, { recursive: true });
    await phone.screenshot({ path: join(out, "chat-phone-long-room.png"), fullPage: true });
  });
});
