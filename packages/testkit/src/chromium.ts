// A real Chromium for the browser tests: Debian's `chromium`, driven by
// playwright-core (which downloads no browser of its own). Without the
// background-networking flags Chromium's connections hang on a closed
// network; Playwright gives every launch a fresh temporary profile.
import { chromium, type Browser } from "playwright-core";
import { existsSync } from "node:fs";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export const haveChromium = existsSync(CHROMIUM_PATH);

/** Browser tests run where Chromium is installed, and always in CI (.ci/run installs it). */
export function chromiumOrSkip(): boolean {
  if (!haveChromium && process.env.CI) throw new Error(`CI must provide Chromium at ${CHROMIUM_PATH}`);
  return haveChromium;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: FLAGS, headless: true, timeout: 60_000 });
}
