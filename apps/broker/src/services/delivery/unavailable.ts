// The presences of this instance a send statement must not lease to: those
// that do not take pushes now (a socket backing up), whose push window is
// full or holds a lapsed lease the queue has not taken back, those of a
// member whose pushes are on their way back to the queue (handed-back.ts),
// and those whose sockets closed while their rows are still live.
// Every batch of sends asks. A scan of every presence cost about 0.4 ms a
// batch with 10,000 presences connected (`bun run bench presences`), 150
// times what the engaged ones cost when a few are, as at 1,000 msg/s. Only
// an engaged presence can be one of the first three (local-presences.ts),
// so only those are looked at, and each found at rest leaves the engaged
// set until a push engages it again.
import { takesPushes, type LocalPresences } from "../local-presences.ts";
import type { HandedBack } from "./handed-back.ts";

export function unavailablePresences(presences: LocalPresences, handedBack: HandedBack, ending: Iterable<string>): string[] {
  const ids = new Set<string>(ending);
  for (const p of presences.engaged()) {
    if (!takesPushes(p) || p.window.room() <= 0 || p.window.lapsed()) ids.add(p.presenceId);
    else if (p.window.idle()) presences.atRest(p);
  }
  for (const memberId of handedBack.members()) {
    for (const p of presences.ofMember(memberId)) ids.add(p.presenceId);
  }
  return [...ids];
}
