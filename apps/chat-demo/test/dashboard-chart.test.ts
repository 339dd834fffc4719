// The dashboard's chart in a real Chromium against a real broker: its
// legends are drawn as large as the board's other small text, on a phone
// as on a desktop (a screenshot under bench/out/).
import { describe, expect, test } from "bun:test";
import { REPO_ROOT } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, enabled, newContext, stage, useStage, WAIT } from "./stage.ts";

useStage();

/**
 * Page code (as text: this file is typechecked without the DOM library): the
 * height the "● live" label's text is drawn at, and each chart legend's.
 */
const DRAWN = `(() => {
  const height = (node) => { const r = document.createRange(); r.selectNodeContents(node); return r.getBoundingClientRect().height; };
  const walk = document.createTreeWalker(document.getElementById("chart"), NodeFilter.SHOW_TEXT);
  const legends = [];
  while (walk.nextNode()) if (/\\(max \\d+\\)/.test(walk.currentNode.data)) legends.push(height(walk.currentNode));
  return { live: height(document.getElementById("live").firstChild), legends };
})()`;

describe.skipIf(!enabled)("dashboard chart", () => {
  test("the chart's legends are as readable as the board's small text, at a phone's width too", async () => {
    for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 800 }]) {
      const page = await (await newContext({ viewport })).newPage();
      await page.goto(`${stage.broker.url}/dashboard?mesh=${stage.mesh.slug}`);
      await page.fill("#token", ADMIN_TOKEN);
      await page.press("#token", "Enter");
      await page.waitForSelector("#board:not([hidden])", WAIT);
      await page.waitForFunction(`${DRAWN}.legends.length === 2`, undefined, WAIT);
      const { live, legends } = (await page.evaluate(DRAWN)) as { live: number; legends: number[] };
      expect({ width: viewport.width, smaller: legends.filter((h) => h < live - 0.5) }).toEqual({ width: viewport.width, smaller: [] });
      if (viewport.width < 400) {
        const out = join(REPO_ROOT, "bench", "out");
        mkdirSync(out, { recursive: true });
        await page.locator("#chart").screenshot({ path: join(out, "dashboard-chart-phone.png") });
      }
    }
  });
});
