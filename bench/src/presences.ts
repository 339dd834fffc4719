// `bun run bench presences`: what each batch of sends pays to learn which of
// the instance's presences it must not lease to (the broker's
// delivery/unavailable.ts, imported: it is what is measured), with 100,
// 1,000 and 10,000 presences connected, beside a scan of every presence
// with the same test. A few presences are engaged (pushes awaiting their
// acks), as at 1,000 msg/s where acks come within milliseconds, or half of
// them, as under a backlog. One process, no database; the two ways take
// turns, a round of each at a time, so the machine's drift falls on both.
import { HandedBack } from "../../apps/broker/src/services/delivery/handed-back.ts";
import { PushWindow } from "../../apps/broker/src/services/delivery/push-window.ts";
import { unavailablePresences } from "../../apps/broker/src/services/delivery/unavailable.ts";
import { LocalPresences, takesPushes, type LocalPresence } from "../../apps/broker/src/services/local-presences.ts";
import { runContext } from "./machine.ts";
import { writeReport } from "./out.ts";
import { contextLines, table, type RunContext } from "./report.ts";
import type { Size } from "./scenarios.ts";
import { summarize } from "./stats.ts";

// The broker's own window size and lease (app.ts, LEASE_SECONDS's default).
const PUSH_WINDOW = 512;
const LEASE_SECONDS = 30;
const FEW_ENGAGED = 16;
export const PRESENCES_SHAPE: Record<Size, { counts: number[]; rounds: number; calls: number }> = {
  full: { counts: [100, 1_000, 10_000], rounds: 7, calls: 1_000 },
  smoke: { counts: [10, 100], rounds: 1, calls: 10 },
};

export interface PresencesCase {
  presences: number;
  engaged: number;
  /** Microseconds per call, the median of the rounds. */
  scanUs: number;
  engagedOnlyUs: number;
  /** Both ways named the same presences. */
  agreed: boolean;
}

export interface PresencesReport {
  kind: "presences";
  context: RunContext;
  description: string;
  cases: PresencesCase[];
}

function presence(i: number): LocalPresence {
  return {
    presenceId: crypto.randomUUID(),
    memberId: `member-${i}`,
    meshId: "mesh",
    pubkey: `pubkey-${i}`,
    sessionId: `session-${i}`,
    displayName: `peer ${i}`,
    role: "member",
    link: { push: () => "sent", pushEphemeral: () => "sent", writeTogether: (write) => write(), presenceEvent: () => {}, end: () => {}, framesRead: async () => {}, unsentBytes: () => 0 },
    window: new PushWindow(PUSH_WINDOW, LEASE_SECONDS, Date.now),
    congestedSince: null,
    ended: false,
  };
}

// The question as it was asked before: every presence, each tested.
function scanEvery(presences: LocalPresences, handedBack: HandedBack): string[] {
  const held = new Set(handedBack.members());
  return presences
    .all()
    .filter((p) => !takesPushes(p) || p.window.room() <= 0 || p.window.lapsed() || held.has(p.memberId))
    .map((p) => p.presenceId);
}

function microsPerCall(ask: () => string[], calls: number): number {
  const started = performance.now();
  for (let i = 0; i < calls; i++) ask();
  return ((performance.now() - started) * 1000) / calls;
}

function measure(count: number, engaged: number, size: Size): PresencesCase {
  const { rounds, calls } = PRESENCES_SHAPE[size];
  const presences = new LocalPresences();
  const handedBack = new HandedBack();
  const all = Array.from({ length: count }, (_, i) => presence(i));
  for (const p of all) presences.add(p);
  // One push awaiting its ack in each engaged presence, and every fourth of them full: the answer is not empty.
  for (const [i, p] of all.slice(0, engaged).entries()) {
    const pushes = i % 4 === 0 ? PUSH_WINDOW : 1;
    for (let k = 0; k < pushes; k++) p.window.opened(crypto.randomUUID());
    presences.engage(p);
  }
  const sorted = (ids: string[]) => [...ids].sort().join();
  const agreed = sorted(scanEvery(presences, handedBack)) === sorted(unavailablePresences(presences, handedBack, []));
  const scan: number[] = [];
  const engagedOnly: number[] = [];
  for (let r = 0; r < rounds; r++) {
    scan.push(microsPerCall(() => scanEvery(presences, handedBack), calls));
    engagedOnly.push(microsPerCall(() => unavailablePresences(presences, handedBack, []), calls));
  }
  return { presences: count, engaged, scanUs: summarize(scan).p50, engagedOnlyUs: summarize(engagedOnly).p50, agreed };
}

export function runPresencesReport(size: Size): PresencesReport {
  const { counts, rounds, calls } = PRESENCES_SHAPE[size];
  const cases: PresencesCase[] = [];
  for (const count of counts) {
    cases.push(measure(count, Math.min(FEW_ENGAGED, count), size));
    cases.push(measure(count, count / 2, size));
  }
  return {
    kind: "presences",
    context: runContext("presences", size, "none"),
    description: `${rounds} rounds of ${calls} calls of each way in turn, push windows of ${PUSH_WINDOW}`,
    cases,
  };
}

export function presencesMarkdown(report: PresencesReport): string {
  const f = (v: number) => v.toLocaleString("en-US", { maximumFractionDigits: 2 });
  const rows = report.cases.map((c) => [
    f(c.presences),
    f(c.engaged),
    f(c.scanUs),
    f(c.engagedOnlyUs),
    `${f(c.engagedOnlyUs / c.scanUs)}×`,
    c.agreed ? "yes" : "**no**",
  ]);
  return [
    contextLines(report.context),
    "",
    `**presences**: which presences a batch of sends must not lease to; ${report.description}.`,
    "",
    table(["presences", "engaged", "scan of every presence (µs)", "engaged ones only (µs)", "engaged only ÷ scan", "same answer"], rows),
  ].join("\n");
}

export async function main(size: Size): Promise<void> {
  const report = runPresencesReport(size);
  await writeReport("presences", size, report, presencesMarkdown(report));
}
