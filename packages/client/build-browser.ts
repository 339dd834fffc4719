// Builds the browser SDK: src/browser.ts and everything it imports (zod, the
// @noble primitives) as one minified ES module, dist/switchboard.browser.js.
// Build output stays out of git: `bun run build:browser` makes it, and the
// chat demo and the browser tests build it when they start.
import { join } from "node:path";

export const BROWSER_BUNDLE = join(import.meta.dir, "dist", "switchboard.browser.js");

export async function buildBrowserBundle(outfile: string = BROWSER_BUNDLE): Promise<{ path: string; bytes: number }> {
  const result = await Bun.build({
    entrypoints: [join(import.meta.dir, "src", "browser.ts")],
    target: "browser",
    format: "esm",
    minify: true,
    sourcemap: "none",
  });
  const [output] = result.outputs;
  if (!result.success || output === undefined) {
    throw new Error(`the browser bundle did not build:\n${result.logs.map(String).join("\n")}`);
  }
  const text = await output.text();
  // A Node built-in in the bundle would fail in a page (or arrive as a heavy polyfill).
  const nodeImport = text.match(/["'](node:[a-z_/]+)["']/);
  if (nodeImport) throw new Error(`the browser bundle imports ${nodeImport[1]}`);
  await Bun.write(outfile, text);
  return { path: outfile, bytes: new TextEncoder().encode(text).byteLength };
}

if (import.meta.main) {
  const { path, bytes } = await buildBrowserBundle(process.argv[2]);
  const gzipped = Bun.gzipSync(await Bun.file(path).bytes()).byteLength;
  console.log(`${path}: ${(bytes / 1024).toFixed(1)} KiB (${(gzipped / 1024).toFixed(1)} KiB gzipped)`);
}
