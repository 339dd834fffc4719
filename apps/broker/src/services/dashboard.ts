// What the operator's dashboard shows, for the /v1/admin/… endpoints: the
// database's view of meshes, members, instances and rooms, and over the last
// minutes the queue depth (from the gauge housekeeping refreshes) and the
// messages written by every instance (from the messages' sequence), both
// sampled by this instance.
import type { Database } from "@switchboard/db";
import type { Metrics } from "../metrics.ts";
import {
  liveInstances,
  meshSummaries,
  membersWithPresences,
  messagesWritten,
  rooms,
  type InstanceRow,
  type MemberPresences,
  type MeshSummary,
  type RoomRow,
} from "../store/dashboard.ts";
import { findMesh } from "../store/directory.ts";
import { UUID } from "../store/sql.ts";
import { refuse, RefusedError } from "./outcome.ts";
import type { Clock } from "./timing.ts";

const WINDOW_MINUTES = 10;
/** The rooms an overview lists: the busiest, as a page can show them. */
export const ROOMS_SHOWN = 100;

export interface Overview {
  meshes: MeshSummary[];
  instances: Array<InstanceRow & { leaseAgeSeconds: number }>;
  rooms: RoomRow[];
  /** Whether there are rooms past the ROOMS_SHOWN listed. */
  roomsMore: boolean;
  queue: {
    /** Seconds between samples. */
    sampleSeconds: number;
    /** Per sample since the one before it, oldest first: messages written by every instance, and their rate. */
    sends: Array<{ at: string; sends: number; perSecond: number }>;
    /** Queued or leased deliveries at each sample. */
    depth: Array<{ at: string; depth: number }>;
  };
}

interface Sample {
  at: number;
  depth: number;
  written: number;
}

export class DashboardService {
  private readonly samples: Sample[] = [];
  private timer: Timer | undefined;

  constructor(
    private readonly db: Database,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly options: { sampleIntervalMs: number; instanceLeaseSeconds: number },
  ) {}

  start(): void {
    const keep = Math.ceil((WINDOW_MINUTES * 60_000) / this.options.sampleIntervalMs) + 1;
    const sample = async () => {
      const [gauge, written] = await Promise.all([this.metrics.queueDepth.get(), messagesWritten(this.db)]);
      this.samples.push({ at: this.clock(), depth: gauge.values[0]?.value ?? 0, written });
      if (this.samples.length > keep) this.samples.splice(0, this.samples.length - keep);
    };
    // A sample the database did not answer is skipped; the next one comes at the next interval.
    this.timer = setInterval(() => void sample().catch(() => {}), this.options.sampleIntervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async overview(): Promise<Overview> {
    const [meshes, instances, shown] = await Promise.all([meshSummaries(this.db), liveInstances(this.db), rooms(this.db, ROOMS_SHOWN)]);
    const iso = (at: number) => new Date(at).toISOString();
    const sends = this.samples.slice(1).map((s, i) => {
      const previous = this.samples[i]!;
      const count = Math.max(0, s.written - previous.written);
      return { at: iso(s.at), sends: count, perSecond: count / Math.max(0.001, (s.at - previous.at) / 1000) };
    });
    return {
      meshes,
      // The lease is renewed every third of it: its age is how long ago that last happened.
      instances: instances.map((i) => ({ ...i, leaseAgeSeconds: Math.max(0, this.options.instanceLeaseSeconds - i.leaseRemainingSeconds) })),
      rooms: shown.rooms,
      roomsMore: shown.more,
      queue: {
        sampleSeconds: this.options.sampleIntervalMs / 1000,
        sends,
        depth: this.samples.map((s) => ({ at: iso(s.at), depth: s.depth })),
      },
    };
  }

  /** The mesh's id, by id or slug; not_found otherwise. */
  async meshId(ref: string): Promise<string> {
    const mesh = await findMesh(this.db, ref, UUID.test(ref));
    if (mesh === null) throw new RefusedError(refuse("not_found", `no mesh ${ref}`));
    return mesh.id;
  }

  async members(meshRef: string): Promise<MemberPresences[]> {
    return membersWithPresences(this.db, await this.meshId(meshRef));
  }
}
