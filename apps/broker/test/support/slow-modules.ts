// Preloaded into a broker under test (BUN_OPTIONS=--preload): the load of
// the broker's app module says so on stderr, then waits until the file
// SLOW_MODULES_GATE names exists, so a test can signal the broker while its
// modules load (before any of its own code has run) and then let it go on.
import { plugin } from "bun";
import { existsSync } from "node:fs";

const gate = process.env.SLOW_MODULES_GATE ?? "";

plugin({
  name: "slow broker modules",
  setup(build) {
    build.onLoad({ filter: /apps\/broker\/src\/app\.ts$/ }, async ({ path }) => {
      process.stderr.write("loading app.ts\n");
      while (!existsSync(gate)) await Bun.sleep(20);
      return { contents: await Bun.file(path).text(), loader: "ts" };
    });
  },
});
