// One webhook request by the broker's poster, run as a process of its own so
// that the test can give it a certificate authority to trust
// (NODE_EXTRA_CA_CERTS, read as Bun starts). Prints the poster's result.
// Usage: bun post-webhook.ts <url> <connectTo>
import { createWebhookPoster } from "../../src/transport/webhook/poster.ts";

const [url, connectTo] = process.argv.slice(2);
if (url === undefined || connectTo === undefined) throw new Error("usage: post-webhook.ts <url> <connectTo>");
const request = { url, secret: "webhook-secret-0123456789", attempt: 1, messages: [], connectTo: [connectTo] as const };
const result = await createWebhookPoster("pinned-address-test").post(request, 5000, new AbortController().signal);
console.log(JSON.stringify(result));
