// The dashboard's members table in a real Chromium against a real broker:
// members the presence stream brings take their place in the table's order
// at once, so rows do not jump when the next listing sorts them (a
// screenshot under bench/out/).
import { describe, expect, test } from "bun:test";
import { SwitchboardClient } from "@switchboard/client";
import { newIdentity, REPO_ROOT } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, enabled, holdRoute, newContext, stage, useStage, WAIT } from "./stage.ts";

useStage();

describe.skipIf(!enabled)("dashboard members order", () => {
  test("members who come online between two listings are shown in name order, as the listing orders them", async () => {
    const page = await (await newContext()).newPage();
    await page.goto(`${stage.broker.url}/dashboard?mesh=${stage.mesh.slug}`);
    await page.fill("#token", ADMIN_TOKEN);
    await page.press("#token", "Enter");
    await page.waitForSelector("#board:not([hidden])", WAIT);
    await page.waitForSelector("#live:has-text('live')", WAIT);
    // No listing answers until the check: what the table shows comes from the presence stream.
    const { release } = await holdRoute(page, `**/v1/admin/meshes/${stage.mesh.id}/members`);
    const clients: SwitchboardClient[] = [];
    try {
      for (const name of ["zora", "abel"]) {
        const identity = await newIdentity();
        await stage.admin.addMember(stage.mesh.id, { pubkey: identity.publicKey, displayName: name });
        clients.push(await SwitchboardClient.connect({ url: stage.broker.url, meshId: stage.mesh.id, secretKey: identity.secretKey }));
        await page.waitForSelector(`#members [data-presence]:has-text("${name}")`, WAIT);
      }
      const names = await page.locator("#members tr td:first-child").allTextContents();
      const out = join(REPO_ROOT, "bench", "out");
      mkdirSync(out, { recursive: true });
      await page.locator("#members").screenshot({ path: join(out, "dashboard-members-order.png") });
      expect(names.filter((n) => n === "abel" || n === "zora")).toEqual(["abel", "zora"]);
    } finally {
      release();
      await Promise.allSettled(clients.map((c) => c.close()));
    }
  });
});
