// Run by `bun install` (postinstall): makes the embedded cluster template.
import { TEMPLATE_PATH, prepareTemplate } from "../embedded-template.ts";

if (await prepareTemplate()) console.log(`embedded Postgres template ready: ${TEMPLATE_PATH}`);
