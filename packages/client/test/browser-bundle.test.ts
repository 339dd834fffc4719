// The browser bundle as a page gets it (src/browser.ts built by
// build-bundles.ts): what docs/client.md says it holds, every export of the
// package but the transcript helpers, and working without Node.
import { expect, test } from "bun:test";
import { WEBHOOK_SIGNATURE_HEADER, webhookSignature, webhookSignatureHeader, type PushFrame } from "@switchboard/protocol";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBrowserBundle } from "../build-bundles.ts";
import * as sdk from "../src/index.ts";

/** They read the transcript files on this machine's disk: Node only. */
const NODE_ONLY = ["inferStatusFromTranscript", "transcriptDir", "watchTranscriptStatus"];

test("the browser bundle exports everything the package does but the transcript helpers; its verifyWebhook and HttpSender work", async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-bundle-"));
  try {
    const { path } = await buildBrowserBundle(join(dir, "switchboard.browser.js"));
    const bundle = (await import(path)) as typeof sdk;
    expect(Object.keys(bundle).sort()).toEqual(Object.keys(sdk).filter((name) => !NODE_ONLY.includes(name)).sort());

    const push: PushFrame = {
      type: "push",
      messageId: crypto.randomUUID(),
      meshId: crypto.randomUUID(),
      senderPubkey: "ab".repeat(32),
      targetSpec: "#ops",
      priority: "next",
      nonce: "plain",
      ciphertext: btoa(JSON.stringify({ ok: true })),
      createdAt: new Date().toISOString(),
      replyTo: null,
      attempt: 1,
    };
    const body = JSON.stringify({ type: "push_batch", messages: [push] });
    const t = Math.floor(Date.now() / 1000);
    const headers = new Headers({ [WEBHOOK_SIGNATURE_HEADER]: webhookSignatureHeader(t, await webhookSignature("whsec-test", t, body)) });
    expect(await bundle.verifyWebhook("whsec-test", headers, body)).toEqual({ type: "push_batch", messages: [push] });
    const sender = await bundle.HttpSender.create({ url: "http://127.0.0.1:1", token: "sba_x" });
    expect(await sender.send("*", "x").catch((error: unknown) => error)).toMatchObject({ code: "unreachable" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
