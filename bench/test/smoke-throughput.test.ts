// Benchmark smoke runs, one group of them (bench/test/support/smoke.ts).
import { smokeGroup } from "./support/smoke.ts";

smokeGroup("throughput");
