// "Nothing (more) arrived" without sleeping: a fixed wait proves nothing on a
// slow machine, a later event that must come after does. The broker pushes a
// member's deliveries in queue order, so a marker message sent after
// everything else arrives after anything else it was going to push; and a
// message nobody acks comes back every lease, so its pushes count lease cycles.
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

/**
 * Sends a message from `from` to `probe`, a peer that never acks it: the broker pushes it again
 * each time its lease runs out and is swept. The returned function waits for its push number n,
 * which proves n - 1 lease cycles since it was sent: by the third, a delivery leased before it
 * and left unacked (to this or another peer) has been pushed again, since lease expiry is swept
 * for all deliveries at once. `probe` must be its member's only presence.
 */
export async function sendLeaseProbe(from: TestPeer, probe: TestPeer): Promise<(attempt: number, timeoutMs?: number) => Promise<void>> {
  const ack = await from.send(probe.identity.publicKey);
  if (ack.type !== "ack") throw new Error(`the probe was not acked: ${JSON.stringify(ack)}`);
  return async (attempt, timeoutMs = 30_000) => {
    await probe.nextFrame((f) => f.type === "push" && f.messageId === ack.messageId && f.attempt === attempt, timeoutMs);
  };
}
