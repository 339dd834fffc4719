// How a line draws the text of a message that is more than one short
// sentence, in a real Chromium against a real broker: the line breaks an
// agent or the CLI put in it are kept (a screenshot under bench/out/).
import { describe, expect, test } from "bun:test";
import { REPO_ROOT } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { allShown, enabled, newContext, openChat, programPeer, useStage } from "./stage.ts";

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
