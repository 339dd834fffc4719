// "Nothing (more) arrived" without sleeping: a message sent after everything
// else is the marker. The broker pushes a member's deliveries in queue order,
// so a push it was going to make for anything sent earlier reaches the
// recipient before the marker does; a fixed wait proves nothing on a slow
// machine.
import type { Frame, TestPeer } from "./peer.ts";

/**
 * Sends a direct `now` message (it passes every status) from `from` to `to`,
 * waits for its push, acks it (so no lease brings it back) and returns the
 * pushes `to` had received before it. `to` must be its member's only presence.
 */
export async function pushesBeforeMarker(from: TestPeer, to: TestPeer, timeoutMs = 15_000): Promise<Frame[]> {
  const ack = await from.send(to.identity.publicKey, { priority: "now" });
  if (ack.type !== "ack" || typeof ack.messageId !== "string") throw new Error(`the marker was not acked: ${JSON.stringify(ack)}`);
  const marker = await to.nextFrame((f) => f.type === "push" && f.messageId === ack.messageId, timeoutMs);
  to.ack([ack.messageId]);
  const pushes = to.pushes();
  return pushes.slice(0, pushes.indexOf(marker));
}
