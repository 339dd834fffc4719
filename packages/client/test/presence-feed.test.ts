// PresenceFeed alone: events the application sees, and after a reconnect the
// presences missing from the fresh snapshot reported as left.
import { describe, expect, test } from "bun:test";
import { PresenceFeed } from "../src/presence-feed.ts";
import type { PresenceEvent } from "../src/types.ts";

const presence = (id: string, status: PresenceEvent["status"] = "idle") => ({
  presenceId: id,
  pubkey: "ab".repeat(32),
  displayName: id,
  sessionId: `s-${id}`,
  status,
});

describe("PresenceFeed", () => {
  test("joined, status changes and left reach the application once; the list follows", async () => {
    const seen: string[] = [];
    const feed = new PresenceFeed({ request: async () => ({}), ping: async () => 0, emit: (e) => seen.push(`${e.event} ${e.presenceId} ${e.status}`) });
    await feed.subscribe();
    feed.receive({ ...presence("a"), event: "joined" });
    feed.receive({ ...presence("a"), event: "joined" });
    feed.receive({ ...presence("a", "working"), event: "status" });
    feed.receive({ ...presence("a", "working"), event: "status" });
    feed.receive({ ...presence("b"), event: "joined" });
    feed.receive({ ...presence("b"), event: "left" });
    feed.receive({ ...presence("b"), event: "left" });
    expect(seen).toEqual(["joined a idle", "status a working", "joined b idle", "left b idle"]);
    expect(feed.list().map((p) => p.presenceId)).toEqual(["a"]);
  });

  test("after a reconnect, presences the new snapshot does not list are reported as left", async () => {
    const seen: string[] = [];
    let snapshot: string[] = [];
    const feed = new PresenceFeed({
      request: async (frame) => {
        // The broker answers a subscribe with its snapshot before the pong.
        if (frame.type === "subscribe") for (const id of snapshot) feed.receive({ ...presence(id), event: "joined" });
        return {};
      },
      ping: async () => 0,
      emit: (e) => seen.push(`${e.event} ${e.presenceId}`),
    });
    snapshot = ["a", "b"];
    await feed.subscribe();
    snapshot = ["a", "c"];
    await feed.reconnected();
    expect(seen).toEqual(["joined a", "joined b", "joined c", "left b"]);
    expect(feed.list().map((p) => p.presenceId).sort()).toEqual(["a", "c"]);
  });
});
