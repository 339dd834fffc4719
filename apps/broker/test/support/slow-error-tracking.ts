// Preloaded into a broker under test (BUN_OPTIONS=--preload): its import of
// @sentry/bun says so on stderr and then takes a minute, as a cold start on a
// slow disk may, so a test can signal the broker while error tracking loads.
import { plugin } from "bun";

plugin({
  name: "slow @sentry/bun",
  setup(build) {
    build.module("@sentry/bun", async () => {
      process.stderr.write("loading @sentry/bun\n");
      await Bun.sleep(60_000);
      return { loader: "object", exports: {} };
    });
  },
});
