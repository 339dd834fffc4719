// `bun run bench robust [--smoke]`: the broker under pressure and faults, at
// full size, with figures. A slow consumer, floods of every kind while a
// probe pair measures latency, seeded fuzzing, and Postgres restarted and an
// instance SIGKILLed while messages flow. `bun run test` runs small sizes of
// the same drivers (apps/broker/test/pressure.test.ts,
// pressure-writer.test.ts, fuzz.test.ts, bench/test/robust.test.ts).
import { freePort, fuzzBroker, setupMesh, type FuzzReport, type SetupMember } from "@switchboard/testkit";
import { machine, type Machine } from "./machine.ts";
import { writeReport } from "./out.ts";
import { floods, type FloodsReport } from "./robust-floods.ts";
import { runFaults, type FaultsReport } from "./robust-faults.ts";
import { slowConsumer, type SlowConsumerReport } from "./robust-slow.ts";
import { ADMIN_TOKEN, stage, Steps, UNLIMITED, type Size } from "./robust-stage.ts";

export type { Size } from "./robust-stage.ts";

/** For the fuzzer, one member sending everything: no limit may end its run early. */
const OPEN_LIMITS = {
  SEND_RATE_LIMIT_PER_MIN: UNLIMITED,
  SEND_RECIPIENTS_RATE_LIMIT_PER_MIN: UNLIMITED,
  CONTROL_RATE_LIMIT_PER_MIN: UNLIMITED,
  MAX_REFUSED_FRAMES_PER_MIN: UNLIMITED,
  HELLO_FAILURES_PER_ADDRESS_PER_MIN: UNLIMITED,
  HELLO_RATE_LIMIT_PER_MIN: UNLIMITED,
  HOOK_RATE_LIMIT_PER_MIN: UNLIMITED,
  HOOK_RATE_LIMIT_PER_TOKEN_PER_MIN: UNLIMITED,
  MAX_PENDING_HELLOS: "20000",
  MAX_PENDING_HELLOS_PER_ADDRESS: "20000",
};

async function fuzz(size: Size): Promise<FuzzReport> {
  const s = await stage(size, OPEN_LIMITS);
  try {
    const { mesh, members } = await setupMesh(s.admin, { members: 2 });
    const [fuzzer, other] = members as [SetupMember, SetupMember];
    const full = size === "full";
    return await fuzzBroker(
      {
        baseUrl: s.broker.url,
        wsUrl: s.broker.wsUrl,
        adminToken: ADMIN_TOKEN,
        meshId: mesh.id,
        identity: fuzzer.identity,
        otherPubkey: other.pubkey,
        hookToken: await s.admin.createHookToken(mesh.id, fuzzer.id),
      },
      {
        seed: Number(process.env.FUZZ_SEED ?? 20261129),
        frames: full ? 100_000 : 500,
        hellos: full ? 10_000 : 50,
        hooks: full ? 10_000 : 50,
        adminBodies: full ? 10_000 : 50,
      },
    );
  } finally {
    await s.close();
  }
}

export interface RobustReport {
  size: Size;
  machine: Machine;
  slowConsumer: SlowConsumerReport;
  floods: FloodsReport;
  fuzz: Omit<FuzzReport, "unanswered"> & { unanswered: number; firstUnanswered: FuzzReport["unanswered"] };
  faults: FaultsReport;
}

/** steps: marked as the run goes, for whoever cuts it short to say where it was. */
export async function runRobust(size: Size, steps = new Steps()): Promise<RobustReport> {
  steps.mark("slow consumer");
  const slow = await slowConsumer(size, steps);
  steps.mark("floods");
  const flooded = await floods(size, steps);
  steps.mark("fuzzing");
  const fuzzed = await fuzz(size);
  steps.mark("faults");
  const faults = await runFaults(size, await freePort(), await freePort(), steps);
  steps.mark("done");
  return {
    size,
    machine: machine(),
    slowConsumer: slow,
    floods: flooded,
    fuzz: { ...fuzzed, unanswered: fuzzed.unanswered.length, firstUnanswered: fuzzed.unanswered.slice(0, 10) },
    faults,
  };
}

/** `bun run bench robust`, or with `floods` after it the floods alone. */
export async function main(size: Size, part?: string): Promise<void> {
  if (part !== undefined && part !== "floods") throw new Error(`robust has one part to run alone, floods (got ${part})`);
  const report = part === "floods" ? { size, machine: machine(), floods: await floods(size, new Steps()) } : await runRobust(size);
  await writeReport(part === "floods" ? "robust-floods" : "robust", size, report);
}
