// What `switchboard help` and `<command> --help` show of each command: every
// option it takes, so none is there to find only by reading the source.
import { expect, test } from "bun:test";
import { COMMANDS } from "../src/cli.ts";

test("every option a command takes is in its usage line", () => {
  const missing = COMMANDS.flatMap((c) =>
    Object.keys(c.options)
      .filter((name) => !new RegExp(`--${name}\\b`).test(c.usage))
      .map((name) => `${c.words.join(" ")}: --${name}`),
  );
  expect(missing).toEqual([]);
});
