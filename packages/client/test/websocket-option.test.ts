// The WebSocket option's type takes the ws package's class, which Node
// before 22 passes: typed as the DOM's `typeof WebSocket` it was refused
// (no dispatchEvent), and every such program needed a cast. A class shaped
// as @types/ws types it (fixtures/ws-shaped-class.ts) is typechecked alone.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..", "..", "..");

test("a class shaped as the ws package's WebSocket typechecks as the WebSocket option", async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-ws-type-"));
  try {
    const config = join(dir, "tsconfig.json");
    writeFileSync(
      config,
      JSON.stringify({
        extends: join(ROOT, "tooling", "typescript", "base.json"),
        compilerOptions: { typeRoots: [join(ROOT, "node_modules", "@types")] },
        files: [join(import.meta.dir, "fixtures", "ws-shaped-class.ts")],
      }),
    );
    const tsc = Bun.spawn([process.execPath, join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", config], { stdout: "pipe", stderr: "pipe" });
    const [code, out] = await Promise.all([tsc.exited, new Response(tsc.stdout).text()]);
    expect({ code, out }).toEqual({ code: 0, out: "" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
