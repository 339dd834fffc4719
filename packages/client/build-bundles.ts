// Builds the SDK as one ES module with everything it imports (zod, the
// @noble primitives): dist/switchboard.browser.js from src/browser.ts for web
// pages (minified), and dist/switchboard.node.js from src/index.ts for Node
// programs, which cannot import the TypeScript source. Build output stays
// out of git: `bun run build:browser` and `bun run build:node` make them, and
// the chat demo and the tests build them when they start.
import { join } from "node:path";

export const BROWSER_BUNDLE = join(import.meta.dir, "dist", "switchboard.browser.js");
export const NODE_BUNDLE = join(import.meta.dir, "dist", "switchboard.node.js");

type Built = { path: string; bytes: number };

async function bundle(entry: string, target: "browser" | "node", outfile: string, check: (text: string) => void): Promise<Built> {
  const result = await Bun.build({
    entrypoints: [join(import.meta.dir, "src", entry)],
    target,
    format: "esm",
    minify: target === "browser",
    sourcemap: "none",
  });
  const [output] = result.outputs;
  if (!result.success || output === undefined) {
    throw new Error(`the ${target} bundle did not build:\n${result.logs.map(String).join("\n")}`);
  }
  const text = await output.text();
  check(text);
  await Bun.write(outfile, text);
  return { path: outfile, bytes: new TextEncoder().encode(text).byteLength };
}

export function buildBrowserBundle(outfile: string = BROWSER_BUNDLE): Promise<Built> {
  return bundle("browser.ts", "browser", outfile, (text) => {
    // A Node built-in in the bundle would fail in a page (or arrive as a heavy polyfill).
    const nodeImport = text.match(/["'](node:[a-z_/]+)["']/);
    if (nodeImport) throw new Error(`the browser bundle imports ${nodeImport[1]}`);
  });
}

export function buildNodeBundle(outfile: string = NODE_BUNDLE): Promise<Built> {
  return bundle("index.ts", "node", outfile, (text) => {
    // Only Node's own modules may stay imports: a package left out would have to be installed beside it.
    const external = text.match(/^import .* from ["'](?!node:)([^"']+)["']/m);
    if (external) throw new Error(`the node bundle imports ${external[1]}`);
  });
}

if (import.meta.main) {
  const [which, outfile] = process.argv.slice(2);
  if (which !== "browser" && which !== "node") throw new Error("usage: bun build-bundles.ts browser|node [outfile]");
  const { path, bytes } = await (which === "browser" ? buildBrowserBundle(outfile) : buildNodeBundle(outfile));
  const gzipped = Bun.gzipSync(await Bun.file(path).bytes()).byteLength;
  console.log(`${path}: ${(bytes / 1024).toFixed(1)} KiB (${(gzipped / 1024).toFixed(1)} KiB gzipped)`);
}
