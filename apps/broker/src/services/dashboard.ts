// What the operator's dashboard shows, for the /v1/admin/… endpoints: the
// database's view of meshes, members, instances and rooms, the sends of the
// last minutes (every instance's, from the audit log), and the queue depth
// sampled from the gauge housekeeping refreshes.
import type { Database } from "@switchboard/db";
import type { Metrics } from "../metrics.ts";
import {
  liveInstances,
  meshSummaries,
  membersWithPresences,
  rooms,
  sendsPerBucket,
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
const BUCKET_SECONDS = 10;

export interface Overview {
  meshes: MeshSummary[];
  instances: Array<InstanceRow & { leaseAgeSeconds: number }>;
  rooms: RoomRow[];
  queue: {
    bucketSeconds: number;
    /** Messages sent (stored) per bucket, oldest first. */
    sends: Array<{ at: string; sends: number }>;
    /** Queued or leased deliveries, sampled on this instance since it started. */
    depth: Array<{ at: string; depth: number }>;
  };
}

export class DashboardService {
  private readonly depth: Array<{ at: string; depth: number }> = [];
  private timer: Timer | undefined;

  constructor(
    private readonly db: Database,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly options: { sampleIntervalMs: number; instanceLeaseSeconds: number },
  ) {}

  start(): void {
    const keep = Math.ceil((WINDOW_MINUTES * 60_000) / this.options.sampleIntervalMs);
    this.timer = setInterval(() => {
      void this.metrics.queueDepth.get().then((gauge) => {
        this.depth.push({ at: new Date(this.clock()).toISOString(), depth: gauge.values[0]?.value ?? 0 });
        if (this.depth.length > keep) this.depth.splice(0, this.depth.length - keep);
      });
    }, this.options.sampleIntervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async overview(): Promise<Overview> {
    const [meshes, instances, roomRows, sends] = await Promise.all([
      meshSummaries(this.db),
      liveInstances(this.db),
      rooms(this.db),
      sendsPerBucket(this.db, WINDOW_MINUTES, BUCKET_SECONDS),
    ]);
    return {
      meshes,
      // The lease is renewed every third of it: its age is how long ago that last happened.
      instances: instances.map((i) => ({ ...i, leaseAgeSeconds: Math.max(0, this.options.instanceLeaseSeconds - i.leaseRemainingSeconds) })),
      rooms: roomRows,
      queue: { bucketSeconds: BUCKET_SECONDS, sends, depth: [...this.depth] },
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
