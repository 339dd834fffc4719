// What the pressure tests (a slow reader, a fast writer) share: a raw socket
// as a member, and memory bounds that hold where they can be measured.
import { expect } from "bun:test";
import { backendKind, rawPresence as rawPresenceAt, type SetupMember, type TestBroker } from "@switchboard/testkit";

export const rawPresence = (broker: TestBroker, meshId: string, member: SetupMember) =>
  rawPresenceAt(broker.wsUrl, meshId, member.identity);

/**
 * Memory bounds are checked against a Postgres server only: the embedded
 * database lives in the broker's process, and its heap grows with the data
 * stored, whatever the broker itself holds.
 */
export const checkMemory = backendKind === "postgres";

export function expectGrowthBelow(grew: number, bound: number): void {
  if (checkMemory) expect(grew).toBeLessThan(bound);
}
