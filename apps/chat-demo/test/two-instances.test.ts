// The chat demo with its users on two broker instances of one Postgres, as
// behind a load balancer: each sees the other online, typing and messages
// cross from one instance to the other (a screenshot under bench/out/).
// Postgres only: an embedded database belongs to one broker process.
import { describe, expect, test } from "bun:test";
import { backendKind, freePort, REPO_ROOT, spawnBroker } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startDemo } from "../src/server.ts";
import { enabled, JWT_SECRET, newContext, openChat, say, shows, stage, useStage, WAIT } from "./stage.ts";

useStage();

const typingLine = (text: string) => `document.getElementById("typing").textContent === ${JSON.stringify(text)}`;

describe.skipIf(!enabled || backendKind !== "postgres")("chat demo on two broker instances", () => {
  test("users on different instances see each other online, and each other's typing and messages", async () => {
    const [brokerPort, demoPort] = await Promise.all([freePort(), freePort()]);
    const second = await spawnBroker({ ...stage.brokerEnv, BROKER_PORT: String(brokerPort), CORS_ORIGINS: `http://127.0.0.1:${demoPort}` });
    const demo = await startDemo({ hostname: "127.0.0.1", port: demoPort, brokerUrl: second.url, jwtSecret: JWT_SECRET, mesh: stage.mesh.slug, tokenSeconds: 3600 }).catch(async (error: unknown) => {
      await second.stop();
      throw error;
    });
    try {
      const ann = await openChat(await newContext(), "ann", "lobby");
      const ben = await openChat(await newContext(), "ben", "lobby", demo.url);
      for (const page of [ann, ben]) {
        await page.waitForSelector('#online li:has-text("ann")', WAIT);
        await page.waitForSelector('#online li:has-text("ben")', WAIT);
      }
      await ann.type("#text", "on the first");
      await ben.waitForFunction(typingLine("ann is typing…"), undefined, WAIT);
      await ann.fill("#text", "from the first instance");
      await ann.press("#text", "Enter");
      await shows(ben, "from the first instance");
      await ben.waitForFunction(typingLine(""), undefined, WAIT);
      await ben.type("#text", "on the second");
      await ann.waitForFunction(typingLine("ben is typing…"), undefined, WAIT);
      await ben.fill("#text", "");
      await say(ben, "from the second instance");
      await shows(ann, "from the second instance");
      expect(await ann.locator("#messages li .text").allTextContents()).toEqual(["from the first instance", "from the second instance"]);
      const out = join(REPO_ROOT, "bench", "out");
      mkdirSync(out, { recursive: true });
      await ben.screenshot({ path: join(out, "chat-two-instances.png") });
    } finally {
      await demo.stop();
      await second.stop();
    }
  });
});
