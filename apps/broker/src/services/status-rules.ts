// The status rules of the protocol (§2), as one pure decision.
import type { Status, StatusSource } from "@switchboard/protocol";

const RANK: Record<StatusSource, number> = { hook: 3, manual: 2, jsonl: 1 };

export interface CurrentStatus {
  status: Status;
  source: StatusSource;
  /** Milliseconds since it was set. */
  ageMs: number;
}

export interface StatusSignal {
  status: Status;
  source: StatusSource;
}

/** The status after the signal, or null when the signal does not apply. */
export function decideStatus(current: CurrentStatus, signal: StatusSignal, freshWindowMs: number): StatusSignal | null {
  // dnd is left only by a manual set_status; a manual dnd always applies.
  if (current.status === "dnd" && signal.source !== "manual") return null;
  if (signal.source === "manual" && signal.status === "dnd") return signal;
  // A lower-ranked source may not overwrite a fresh status of a higher one.
  if (RANK[signal.source] < RANK[current.source] && current.ageMs < freshWindowMs) return null;
  return signal;
}

/** Whether a presence in this status may receive a message of this priority. */
export function receives(status: Status, priority: "now" | "next" | "low"): boolean {
  return status === "idle" || priority === "now";
}
