// The embedded database's files are written readable and writable by anyone
// (PGlite creates them 0666): only its directory keeps other users out of
// them, webhook secrets and every stored message among them. DATA_DIR may be
// one the operator made, with the usual 0755. On an embedded database
// whatever backend the run is on: it is the default a newcomer gets.
import { afterEach, describe, expect, test } from "bun:test";
import { embeddedBackend, spawnBroker, type BrokerProcess, type TestBackend } from "@switchboard/testkit";
import { chmodSync, statSync } from "node:fs";
import { join } from "node:path";

const started: BrokerProcess[] = [];
let backend: TestBackend | undefined;
afterEach(async () => {
  for (const b of started.splice(0)) await b.stop();
  await backend?.dispose();
  backend = undefined;
});

const othersMode = (path: string) => statSync(path).mode & 0o077;

describe("the embedded database's directory", () => {
  test("is closed to other users in a DATA_DIR open to them, when made and when found open (left so by an older broker)", async () => {
    backend = embeddedBackend();
    const dataDir = backend.dataDir!;
    chmodSync(dataDir, 0o755);
    const pgdata = join(dataDir, "pgdata");

    const first = await spawnBroker(backend.env);
    started.push(first);
    expect(othersMode(pgdata)).toBe(0);
    await first.stop();

    chmodSync(pgdata, 0o755);
    const second = await spawnBroker(backend.env);
    started.push(second);
    expect(othersMode(pgdata)).toBe(0);
  });
});
