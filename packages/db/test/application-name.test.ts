import { describe, expect, test } from "bun:test";
import { applicationNameOf } from "../src/application-name.ts";

describe("applicationNameOf", () => {
  test("names the instance in full when it fits", () => {
    expect(applicationNameOf("web-1-1234-abcdef12")).toBe("switchboard web-1-1234-abcdef12");
  });

  test("stays within Postgres's 63 bytes and keeps what sets two long ids apart", () => {
    const host = "a-very-long-pod-name-of-a-deployment-in-some-cluster-x2k4q.internal";
    const one = applicationNameOf(`${host}-1-abcdef12`);
    const other = applicationNameOf(`${host}-1-abcdef13`);
    expect(Buffer.byteLength(one)).toBeLessThanOrEqual(63);
    expect(one).toStartWith("switchboard a-very-long");
    expect(one).toEndWith("-1-abcdef12");
    expect(one).not.toBe(other);
  });

  test("sends only printable ASCII, which Postgres keeps as it is", () => {
    expect(applicationNameOf("hôte-7-0000aaaa")).toBe("switchboard h?te-7-0000aaaa");
  });
});
