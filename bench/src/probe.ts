// What the broker process costs, read from /proc: resident memory and CPU time.
import { readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100;

export interface ProcessSample {
  rssBytes: number;
  cpuSeconds: number;
  at: number;
}

export function sampleProcess(pid: number): ProcessSample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(status.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0);
  // Fields 14 and 15 of /proc/PID/stat (after the command in parentheses): utime, stime.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rssBytes: rssKb * 1024, cpuSeconds: ticks / TICKS_PER_SECOND, at: performance.now() };
}

export function cpuPercent(a: ProcessSample, b: ProcessSample): number {
  const wall = (b.at - a.at) / 1000;
  return wall > 0 ? Math.round(((b.cpuSeconds - a.cpuSeconds) / wall) * 1000) / 10 : 0;
}
