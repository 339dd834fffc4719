// The chat demo's server: the static page, its script, the browser SDK bundle,
// a token endpoint, and the names it vouched for (the page names senders who
// are not online with them). A few lines of Bun; the page talks to the broker
// directly (the broker's CORS_ORIGINS must list this server's origin).
import { buildBrowserBundle } from "@switchboard/client/build-bundles";
import { join } from "node:path";
import { demoSettings, SettingsError } from "./settings.ts";
import { issueToken, parseTokenRequest } from "./token-issuer.ts";

export interface DemoOptions {
  port: number;
  hostname: string;
  /** The broker's base URL as the page reaches it. */
  brokerUrl: string;
  jwtSecret: string;
  /** The mesh's slug or id. */
  mesh: string;
  tokenSeconds: number;
}

const PAGE = join(import.meta.dir, "page");
/** Names kept for /names, the oldest going first past this: a demo's memory, not a directory. */
const MAX_NAMES = 10_000;
const MAX_NAMES_ASKED = 200;

async function built(entry: string, external: string[]): Promise<string> {
  const result = await Bun.build({ entrypoints: [entry], target: "browser", minify: true, external });
  const [output] = result.outputs;
  if (!result.success || output === undefined) throw new Error(`${entry} did not build: ${result.logs.join("\n")}`);
  return output.text();
}

export async function startDemo(options: DemoOptions) {
  // The SDK is the published bundle, loaded by the page through an import map.
  const bundle = await buildBrowserBundle(join(import.meta.dir, "..", ".cache", "switchboard.browser.js"));
  const app = await built(join(PAGE, "app.ts"), ["@switchboard/client"]);
  const js = (text: string) => new Response(text, { headers: { "content-type": "text/javascript; charset=utf-8" } });
  const sdk = await Bun.file(bundle.path).text();
  // The first name vouched for a key stays, as the broker keeps the name a
  // member first enrolled with: a later token naming it otherwise (this demo
  // signs one for anyone) does not rename it here either.
  const vouched = new Map<string, string>();
  const remember = (pubkey: string, name: string) => {
    if (vouched.has(pubkey)) return;
    vouched.set(pubkey, name);
    if (vouched.size > MAX_NAMES) vouched.delete(vouched.keys().next().value!);
  };
  const server = Bun.serve({
    port: options.port,
    hostname: options.hostname,
    routes: {
      "/": () => new Response(Bun.file(join(PAGE, "index.html"))),
      "/app.js": () => js(app),
      "/sdk/switchboard.browser.js": () => js(sdk),
      "/config.json": () => Response.json({ brokerUrl: options.brokerUrl, mesh: options.mesh }),
      "/token": {
        POST: async (req) => {
          const parsed = parseTokenRequest(await req.json().catch(() => null));
          if (!parsed.ok) return Response.json({ error: parsed.error }, { status: 400 });
          const { request } = parsed;
          remember(request.pubkey, request.name);
          return Response.json({ token: await issueToken(options.jwtSecret, options.mesh, request, options.tokenSeconds) });
        },
      },
      "/names": (req) => {
        const asked = new URL(req.url).searchParams.getAll("pubkey").slice(0, MAX_NAMES_ASKED);
        return Response.json(Object.fromEntries(asked.flatMap((k) => (vouched.has(k) ? [[k, vouched.get(k)]] : []))));
      },
    },
    fetch: () => new Response("not found", { status: 404 }),
  });
  return { server, url: `http://${options.hostname}:${server.port}`, sdkBytes: bundle.bytes, stop: () => server.stop(true) };
}

if (import.meta.main) {
  let options: DemoOptions;
  try {
    options = demoSettings(process.env);
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    console.error(error.message);
    process.exit(78);
  }
  const demo = await startDemo(options);
  console.log(`chat demo on ${demo.url} (browser SDK ${(demo.sdkBytes / 1024).toFixed(1)} KiB)`);
}
