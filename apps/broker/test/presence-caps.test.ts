// The caps of a hello's insert (store/presences.ts insertPresencesWithinCap),
// on one batch against a real database: a member's presences past its cap are
// refused as the member's, and take no place under the mesh's cap, so another
// member's presence in the same batch still fits; and when the mesh has no
// room, a member's burst is refused as the mesh's, not as the member's: its
// earlier hellos were not admitted either.
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { insertPresencesWithinCap } from "../src/store/presences.ts";
import { useMeshDatabase } from "./support/scratch-db.ts";

const INSTANCE = "caps";
const t = useMeshDatabase("presence-caps");

async function member(name: string): Promise<string> {
  const [m] = await t.db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${t.meshId}::uuid, ${crypto.randomUUID()}, ${name}) RETURNING id`);
  return m!.id;
}

function presence(memberId: string, sessionId: string, replaced: string | null = null) {
  return {
    id: crypto.randomUUID(), meshId: t.meshId, memberId, instanceId: INSTANCE, sessionId, pid: null, cwd: null,
    displayName: "n", status: "idle" as const, statusSource: "manual" as const, statusAgeMs: null, replaced,
  };
}

describe("a hello batch's insert under the member's and the mesh's caps", () => {
  test("of five presences of one member and two of another (member cap 3, mesh cap 5): three and two are inserted", async () => {
    const [greedy, other] = [await member("greedy"), await member("other")];
    const greedyOnes = Array.from({ length: 5 }, (_, i) => presence(greedy, `g${i}`));
    const otherOnes = [presence(other, "o0"), presence(other, "o1")];
    const result = await t.db.transaction((tx) => insertPresencesWithinCap(tx, [...greedyOnes, ...otherOnes], { perMesh: 5, perMember: 3 }));
    expect([...result.inserted].sort()).toEqual([...greedyOnes.slice(0, 3), ...otherOnes].map((p) => p.id).sort());
    expect([...result.memberFull].sort()).toEqual(greedyOnes.slice(3).map((p) => p.id).sort());
  });

  test("a member at its cap: a presence replacing one of its sessions comes first and is inserted; a new one is refused as the member's", async () => {
    const m = await member("full");
    const first = await t.db.transaction((tx) =>
      insertPresencesWithinCap(tx, [presence(m, "a"), presence(m, "b")], { perMesh: 100, perMember: 2 }),
    );
    expect(first.inserted.size).toBe(2);
    // The caller has ended the session "a" replaces before it inserts.
    const [ended] = await t.db.rows<{ id: string }>(sql`
      UPDATE presences SET disconnected_at = now() WHERE member_id = ${m}::uuid AND session_id = 'a' RETURNING id`);
    const fresh = presence(m, "c");
    const replacing = presence(m, "a", ended!.id);
    const second = await t.db.transaction((tx) => insertPresencesWithinCap(tx, [fresh, replacing], { perMesh: 100, perMember: 2 }));
    expect([...second.inserted]).toEqual([replacing.id]);
    expect([...second.memberFull]).toEqual([fresh.id]);
  });

  test("a full mesh refuses a presence of a member under its cap, and not as the member's", async () => {
    const [a, b] = [await member("a"), await member("b")];
    const live = await t.db.rows<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM presences WHERE mesh_id = ${t.meshId}::uuid AND disconnected_at IS NULL`);
    const perMesh = live[0]!.n + 1;
    const [pa, pb] = [presence(a, "x"), presence(b, "y")];
    const result = await t.db.transaction((tx) => insertPresencesWithinCap(tx, [pa, pb], { perMesh, perMember: 10 }));
    expect([...result.inserted]).toEqual([pa.id]);
    expect(result.memberFull.size).toBe(0);
  });

  test("a burst past the member's cap into a mesh with room for fewer: refused as the mesh's unless the member's admitted ones reach its cap", async () => {
    const live = async () =>
      (await t.db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM presences WHERE mesh_id = ${t.meshId}::uuid AND disconnected_at IS NULL`))[0]!.n;
    // Read before the transaction: the embedded database has one connection, which the transaction holds.
    const caps = (room: number) => live().then((n) => ({ perMesh: n + room, perMember: 3 }));
    // No room: none of ten is the member's fault.
    const nobody = await member("no room");
    const none = Array.from({ length: 10 }, (_, i) => presence(nobody, `n${i}`));
    const noRoomCaps = await caps(0);
    const noRoom = await t.db.transaction((tx) => insertPresencesWithinCap(tx, none, noRoomCaps));
    expect({ inserted: noRoom.inserted.size, memberFull: noRoom.memberFull.size }).toEqual({ inserted: 0, memberFull: 0 });
    // Room for two: two are admitted, and the member stays under its cap of three.
    const two = await member("two");
    const twoOnes = Array.from({ length: 10 }, (_, i) => presence(two, `t${i}`));
    const twoCaps = await caps(2);
    const roomForTwo = await t.db.transaction((tx) => insertPresencesWithinCap(tx, twoOnes, twoCaps));
    expect([...roomForTwo.inserted].sort()).toEqual(twoOnes.slice(0, 2).map((p) => p.id).sort());
    expect(roomForTwo.memberFull.size).toBe(0);
    // Room for five: three are admitted, and the member's cap refuses the rest.
    const five = await member("five");
    const fiveOnes = Array.from({ length: 10 }, (_, i) => presence(five, `f${i}`));
    const fiveCaps = await caps(5);
    const roomForFive = await t.db.transaction((tx) => insertPresencesWithinCap(tx, fiveOnes, fiveCaps));
    expect([...roomForFive.inserted].sort()).toEqual(fiveOnes.slice(0, 3).map((p) => p.id).sort());
    expect([...roomForFive.memberFull].sort()).toEqual(fiveOnes.slice(3).map((p) => p.id).sort());
  });
});
