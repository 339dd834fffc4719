// PUT, GET and DELETE of a member's webhook (admin token). Setting one makes
// the member an HTTP recipient from the next claim on; deleting it hands its
// queue back to its sockets, on every instance.
import type { Database } from "@switchboard/db";
import { shownUrl, type WebhookBody } from "@switchboard/protocol";
import type { Logger } from "../../log.ts";
import { deleteWebhook, upsertWebhook, webhookView, type WebhookView } from "../../store/webhooks.ts";
import type { AdminService } from "../admin.ts";
import { queuedWork, type InstanceBus } from "../bus.ts";
import { refuse, RefusedError } from "../outcome.ts";
import type { QueuedWork } from "../queued-work.ts";
import type { WebhookDispatcher } from "./dispatcher.ts";
import { checkTarget, type Resolve } from "./target-policy.ts";

export type WebhookRefusalCode = "not_found" | "conflict" | "invalid";

const fail = (code: WebhookRefusalCode, message: string) => new RefusedError(refuse(code, message));

export interface WebhookAdminDeps {
  db: Database;
  admin: AdminService;
  dispatcher: WebhookDispatcher;
  queuedWork: QueuedWork;
  bus: InstanceBus;
  log: Logger;
  allowPrivate: boolean;
  /** For the target's name to resolve (WEBHOOK_TIMEOUT_MS). */
  lookupTimeoutMs: number;
  /** The target's name lookup: the system's resolver unless a test gives its own. */
  resolve?: Resolve;
}

export function createWebhookAdmin({ db, admin, dispatcher, queuedWork: news, bus, log, allowPrivate, lookupTimeoutMs, resolve }: WebhookAdminDeps) {
  const shown = (found: WebhookView | null, memberRef: string): WebhookView => {
    if (found === null) throw fail("not_found", `member ${memberRef} has no webhook`);
    return { ...found, url: shownUrl(found.url) };
  };
  const view = async (memberId: string, memberRef: string): Promise<WebhookView> => shown(await webhookView(db, memberId), memberRef);

  return {
    async set(meshRef: string, memberRef: string, body: WebhookBody): Promise<WebhookView> {
      const { mesh, member } = await admin.resolveMember(meshRef, memberRef);
      if (member.revokedAt !== null) throw fail("conflict", `member ${memberRef} is revoked`);
      const { refused } = await checkTarget(body.url, allowPrivate, lookupTimeoutMs, resolve);
      if (refused !== null) throw fail("invalid", `url: ${refused}`);
      // Read back in its own transaction: a DELETE committed in between made a PUT that was applied answer 404.
      const set = await db.transaction(async (tx) => {
        await upsertWebhook(tx, member.id, body.url, body.secret);
        return webhookView(tx, member.id);
      });
      log.info({ meshId: mesh.id, memberId: member.id, host: new URL(body.url).host }, "admin webhook set");
      dispatcher.track(member.id, mesh.id);
      return shown(set, memberRef);
    },

    async get(meshRef: string, memberRef: string): Promise<WebhookView> {
      const { member } = await admin.resolveMember(meshRef, memberRef);
      return view(member.id, memberRef);
    },

    /** Answers with the webhook's last state; its queue now goes to the member's sockets. */
    async delete(meshRef: string, memberRef: string): Promise<WebhookView> {
      const { mesh, member } = await admin.resolveMember(meshRef, memberRef);
      const last = await view(member.id, memberRef);
      if (!(await deleteWebhook(db, member.id))) throw fail("not_found", `member ${memberRef} has no webhook`);
      log.info({ meshId: mesh.id, memberId: member.id }, "admin webhook deleted");
      dispatcher.untrack(member.id);
      news.forMembers([member.id]);
      await bus
        .publish(db, queuedWork([member.id], []))
        .catch((error) => log.warn({ err: error }, "wake-up not published; the catch-up sweep will deliver"));
      return last;
    },
  };
}

export type WebhookAdmin = ReturnType<typeof createWebhookAdmin>;
