// Whether this instance should be sent new work, as opposed to whether it is
// alive (/health). An orchestrator or Traefik takes an instance out of
// rotation while it migrates, drains after a stop signal, or has lost its
// database (or the database refuses writes: read-only, or no room on its
// disk), or is short of file descriptors (it refuses new sockets then), and
// puts it back once none of these holds.
import type { DbState } from "./db-health.ts";

export type ReadinessStatus = "migrating" | "ready" | "draining" | "db_down" | "db_read_only" | "db_full" | "descriptors_short";

type Phase = "migrating" | "serving" | "draining";

export class Readiness {
  private phase: Phase = "migrating";
  private db: { readonly state: DbState } | null = null;
  private descriptors: { readonly short: boolean } | null = null;

  /** Migrations are done and the services run; from now on the database health counts, and the descriptors left where they are counted. */
  serving(db: { readonly state: DbState }, descriptors: { readonly short: boolean } | null): void {
    this.db = db;
    this.descriptors = descriptors;
    if (this.phase === "migrating") this.phase = "serving";
  }

  draining(): void {
    this.phase = "draining";
  }

  get status(): ReadinessStatus {
    if (this.phase !== "serving") return this.phase;
    const state = this.db?.state ?? "down";
    if (state !== "up") return `db_${state}`;
    return this.descriptors?.short === true ? "descriptors_short" : "ready";
  }
}
