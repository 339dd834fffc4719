// Builds the services of one instance on one database, in dependency order.
import type { Database } from "@switchboard/db";
import { CLOSE_CODES } from "@switchboard/protocol";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { DeliveryPump } from "./delivery.ts";
import { HelloService } from "./hello.ts";
import { HookService } from "./hooks.ts";
import { InstanceService } from "./instance.ts";
import { MeshService } from "./mesh.ts";
import { Messaging } from "./messaging.ts";
import { PresenceService } from "./presence.ts";
import { SessionRegistry } from "./sessions.ts";
import { StatusService } from "./status.ts";
import { Sweepers } from "./sweepers.ts";
import { Wakeups } from "./wakeups.ts";

export type CoreServices = Awaited<ReturnType<typeof createCoreServices>>;

export async function createCoreServices(db: Database, config: Config, log: Logger, metrics: Metrics, instanceId: string) {
  const sessions = new SessionRegistry();
  const wakeups = new Wakeups(db, log);
  const pump = new DeliveryPump(db, sessions, log, config.LEASE_SECONDS);
  const status = new StatusService(db, wakeups, config.HOOK_FRESH_WINDOW_SECONDS * 1000, (member) => pump.wake([member]));
  const presence = new PresenceService(db, sessions, pump, wakeups, log, instanceId);
  const instance = new InstanceService(db, wakeups, log, instanceId, config.INSTANCE_LEASE_SECONDS, () => {
    for (const p of sessions.all()) p.socket.close(CLOSE_CODES.goingAway, "lease lost");
  });
  const hello = new HelloService(db, wakeups, instanceId, config.MAX_CONNECTIONS_PER_MESH);
  const messaging = new Messaging(db, sessions, pump, wakeups, metrics, log, {
    maxMessageBytes: config.MAX_MESSAGE_BYTES,
    defaultTtlSeconds: config.MESSAGE_TTL_SECONDS,
    sendRateLimitPerMin: config.SEND_RATE_LIMIT_PER_MIN,
  });
  const hooks = new HookService(db, status, metrics, log, config.HOOK_RATE_LIMIT_PER_MIN, config.PENDING_HOOK_SECONDS);
  const mesh = new MeshService(db);
  const sweepers = new Sweepers(db, pump, wakeups, instance, presence, metrics, log, {
    statusTtlSeconds: config.STATUS_TTL_SECONDS,
    deliveredRetentionSeconds: config.DELIVERED_RETENTION_SECONDS,
    catchUpIntervalMs: config.CATCH_UP_INTERVAL_MS,
    sweepIntervalMs: config.SWEEP_INTERVAL_MS,
    instanceRenewIntervalMs: Math.floor((config.INSTANCE_LEASE_SECONDS * 1000) / 3),
    housekeepingIntervalMs: config.HOUSEKEEPING_INTERVAL_MS,
    onHousekeeping: () => {
      hooks.prune();
      messaging.prune();
    },
  });

  await instance.register();
  const unlisten = await wakeups.subscribe({
    members: (ids) => pump.wake(ids),
    meshes: (ids) => pump.wake(ids.flatMap((meshId) => sessions.membersOfMesh(meshId))),
    close: (presenceId, code, reason) => presence.closeLocal(presenceId, code, reason),
    revoked: (memberId) => presence.closeRevokedLocal(memberId),
    resubscribed: () => pump.wake(sessions.all().map((p) => p.memberId)),
  });
  sweepers.start();

  return {
    sessions,
    pump,
    status,
    presence,
    instance,
    hello,
    messaging,
    hooks,
    mesh,
    async stop() {
      sweepers.stop();
      await unlisten();
      await pump.stop();
      await instance.stop();
    },
  };
}
