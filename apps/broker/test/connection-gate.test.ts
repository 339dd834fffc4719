// The limits on sockets that have not said hello yet, per client address,
// as pure code: an IPv6 host counts by its /64, so taking a new address per
// socket dodges nothing.
import { describe, expect, test } from "bun:test";
import { addressKey, ConnectionGate } from "../src/services/connection-gate.ts";

const gate = () => new ConnectionGate({ maxPending: 100, maxPendingPerAddress: 2, failuresPerAddressPerMin: 2, clock: () => 1_000_000 });

describe("ConnectionGate", () => {
  test("addresses of one IPv6 /64 share a limit; other /64s and IPv4 addresses have their own", () => {
    const g = gate();
    expect(g.open("2001:db8:0:0:aaaa::1")).toBeNull();
    expect(g.open("2001:db8::bbbb:2")).toBeNull();
    expect(g.open("2001:0db8:0000:0000:cccc:0:0:3")).toMatchObject({ code: "capacity" });
    expect(g.open("2001:db8:0:1::1")).toBeNull();
    for (const v4 of ["10.0.0.1", "10.0.0.2", "10.0.0.3"]) expect(g.open(v4)).toBeNull();
    g.settled("2001:db8::bbbb:2");
    expect(g.open("2001:db8::dddd:4")).toBeNull();
  });

  test("refused hellos count against the /64", () => {
    const g = gate();
    g.refused("2001:db8::1");
    g.refused("2001:db8::2");
    expect(g.open("2001:db8::3")).toMatchObject({ code: "rate_limited" });
    expect(g.open("2001:db8:1::3")).toBeNull();
  });

  test("addressKey: the /64 of IPv6 in any spelling; IPv4 and mapped IPv4 as they are", () => {
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey("2001:DB8::1")).toBe("2001:db8:0:0::/64");
    expect(addressKey("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(addressKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressKey("::ffff:10.1.2.3")).toBe("::ffff:10.1.2.3");
    expect(addressKey("10.1.2.3")).toBe("10.1.2.3");
    expect(addressKey("unknown")).toBe("unknown");
  });
});
