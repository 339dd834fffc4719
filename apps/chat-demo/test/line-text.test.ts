// How the chat page draws text, in a real Chromium against a real broker:
// the line breaks an agent or the CLI put in a message are kept; the names
// of those typing stay in the order they are listed, whatever their script
// (screenshots under bench/out/).
import { describe, expect, test } from "bun:test";
import { REPO_ROOT } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { allShown, enabled, newContext, openChat, programPeer, useStage, WAIT } from "./stage.ts";

useStage();

/**
 * Page code (as text: this file is typechecked without the DOM library): the
 * top of each of `words` as the line whose text starts with `first` draws it.
 */
const topsOf = (first: string, words: string[]) => `(() => {
  const text = [...document.querySelectorAll("#messages li .text")].find((t) => t.textContent.startsWith(${JSON.stringify(first)}));
  const node = text.firstChild;
  return ${JSON.stringify(words)}.map((w) => {
    const r = document.createRange();
    r.setStart(node, node.data.indexOf(w));
    r.setEnd(node, node.data.indexOf(w) + w.length);
    return r.getBoundingClientRect().top;
  });
})()`;

describe.skipIf(!enabled)("a line's text", () => {
  test("a message of several lines, as an agent sends a list, shows them one under another, not run together", async () => {
    const page = await openChat(await newContext(), "lena", "random");
    const { client } = await programPeer("random");
    const list = "Steps:\n1. build\n2. deploy";
    await client.send("#random", list);
    await allShown(page, [list]);
    const [steps, build, deploy] = (await page.evaluate(topsOf("Steps:", ["Steps:", "build", "deploy"]))) as number[];
    expect(build).toBeGreaterThan(steps!);
    expect(deploy).toBeGreaterThan(build!);
    const out = join(REPO_ROOT, "bench", "out");
    mkdirSync(out, { recursive: true });
    await page.screenshot({ path: join(out, "chat-multiline.png") });
  });
});

/**
 * Page code (as text): where the typing line draws each of `names`, in
 * pixels from the left, whichever text node of it holds the name.
 */
const leftsIn = (names: string[]) => `(() => {
  const walk = document.createTreeWalker(document.getElementById("typing"), NodeFilter.SHOW_TEXT);
  const lefts = {};
  while (walk.nextNode()) {
    const node = walk.currentNode;
    for (const name of ${JSON.stringify(names)}) {
      const at = node.data.indexOf(name);
      if (at < 0) continue;
      const r = document.createRange();
      r.setStart(node, at);
      r.setEnd(node, at + name.length);
      lefts[name] = r.getBoundingClientRect().left;
    }
  }
  return ${JSON.stringify(names)}.map((n) => lefts[n]);
})()`;

describe.skipIf(!enabled)("the typing line", () => {
  test("two people typing with names in right-to-left scripts are drawn in the order the line lists them", async () => {
    const reader = await openChat(await newContext(), "reader", "support");
    const rana = await openChat(await newContext(), encodeURIComponent("رنا"), "support");
    const dan = await openChat(await newContext(), encodeURIComponent("דן"), "support");
    await rana.type("#text", "a");
    await reader.waitForFunction(`document.getElementById("typing").textContent === "رنا is typing…"`, undefined, WAIT);
    await dan.type("#text", "b");
    await reader.waitForFunction(`document.getElementById("typing").textContent === "رنا, דן are typing…"`, undefined, WAIT);
    const [first, second] = (await reader.evaluate(leftsIn(["رنا", "דן"]))) as number[];
    expect(first).toBeLessThan(second!);
    const out = join(REPO_ROOT, "bench", "out");
    mkdirSync(out, { recursive: true });
    await reader.screenshot({ path: join(out, "chat-typing-rtl.png") });
  });
});
