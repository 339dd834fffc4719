// The status rules ("Status and priority" in docs/protocol.md), in one place. Pure decisions live
// here; the ones the database applies in bulk are named here and point to
// their SQL:
// - which priorities a status may receive: RECEIVABLE (store/queue/eligibility.ts),
//   the claim and the ephemeral fan-out both filter with it;
// - working for STATUS_TTL_SECONDS without a signal → idle, source jsonl:
//   expireWorkingStatus (store/status.ts), run by the sweeper;
// - which presence a hook signal is about (session id, else pid+cwd, else the
//   newest with that cwd, else pid), and which connecting presence a signal kept
//   for it matches (session, cwd without pid, or pid): findPresenceForSignal,
//   pendingSignalMatches (store/status.ts);
// - a hook event name → status: hookStatus (packages/protocol, the contract).
import { hookStatus, type HookBody, type Status, type StatusSource } from "@switchboard/protocol";

export { RECEIVABLE } from "../../store/queue/eligibility.ts";

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

export interface InitialStatus extends StatusSignal {
  /** How long ago it was set; null for the default, which counts as set long ago, so any first real signal applies. */
  ageMs: number | null;
}

/** Whether a status was set after a kept hook signal was kept (both ages by the database's clock): it is newer news. */
export const setAfter = (status: { ageMs: number }, signal: { ageMs: number }): boolean => status.ageMs < signal.ageMs;

/**
 * A connecting presence keeps its session's dnd, takes a hook signal that
 * waited for it (unless its session's status was set after the signal was
 * kept: that is newer), else keeps its session's status with its source and
 * age (so the status TTL still ends a working, and a lower source may not
 * overwrite a fresh one), else starts idle by default. A session is its
 * member and session id: a reconnect (a new socket, a restarted broker) is
 * the same session, and its status must not fall back to idle and let held
 * messages through, nor to the default, which any signal overrides.
 */
export function initialStatus(
  pendingSignal: { status: "idle" | "working"; ageMs: number } | null,
  previous: (StatusSignal & { ageMs: number }) | null,
): InitialStatus {
  if (previous?.status === "dnd") return previous;
  const newer = previous !== null && pendingSignal !== null && setAfter(previous, pendingSignal);
  if (pendingSignal !== null && !newer) return { status: pendingSignal.status, source: "hook", ageMs: 0 };
  if (previous !== null) return previous;
  return { status: "idle", source: "manual", ageMs: null };
}

/** The status a hook request asks for: its explicit status, else its Claude Code event's. */
export const statusOfHook = (body: HookBody): "idle" | "working" => hookStatus(body);
