// What each frame of an admitted presence does: one handler per frame type
// of the protocol, checked by the type system (a missing or misspelt type
// does not compile). A handler returns the reply frame, or nothing.
import type { SessionFrame } from "@switchboard/protocol";
import type { Logger } from "../../log.ts";
import type { ChannelService } from "../../services/channels.ts";
import type { DeliveryPump } from "../../services/delivery/pump.ts";
import type { FrameLimits } from "../../services/frame-limits.ts";
import type { HistoryService } from "../../services/history.ts";
import type { LocalPresence } from "../../services/local-presences.ts";
import type { PeerDirectory } from "../../services/peers.ts";
import type { PresenceEvents } from "../../services/presence-events.ts";
import type { SendOutcome, SendService } from "../../services/sending.ts";
import type { StatusService } from "../../services/status/service.ts";
import type { Clock } from "../../services/timing.ts";
import { pushFrame, type Reply } from "./wire.ts";

type FrameType = SessionFrame["type"];
type FrameOf<T extends FrameType> = Extract<SessionFrame, { type: T }>;
/** A reply, and what must happen only once it is written (events that follow an ack). */
export type Answer = Reply | { reply: Reply; afterReply(): void };
type FrameHandler<T extends FrameType> = (presence: LocalPresence, frame: FrameOf<T>) => Promise<Answer | undefined>;
export type FrameHandlers = { readonly [T in FrameType]: FrameHandler<T> };

export interface FrameDeps {
  sending: SendService;
  pump: DeliveryPump;
  status: StatusService;
  channels: ChannelService;
  peers: PeerDirectory;
  history: HistoryService;
  presenceEvents: PresenceEvents;
  limits: FrameLimits;
  log: Logger;
  clock: Clock;
}

/** The ack or error frame answering a send; both carry the send's id. */
export function sendReply(outcome: SendOutcome, id: string | undefined): Reply {
  if (!outcome.ok) {
    // A socket's error codes have no `unavailable`: a send the database did
    // not store is answered `internal`, which sending it again with its id settles.
    const [code, message] =
      outcome.code === "unavailable" ? (["internal", `${outcome.message}; send it again with the same id`] as const) : [outcome.code, outcome.message];
    return { type: "error", code, message, ...(id === undefined ? {} : { id }) };
  }
  return {
    type: "ack",
    id: id ?? null,
    messageId: outcome.messageId,
    queued: outcome.queued,
    recipients: outcome.recipients,
    ...(outcome.fullQueues > 0 ? { fullQueues: outcome.fullQueues } : {}),
    ...(outcome.duplicate ? { duplicate: true as const } : {}),
  };
}

export function frameHandlers(deps: FrameDeps): FrameHandlers {
  return {
    send: async (presence, frame) => sendReply(await deps.sending.send(presence, frame), frame.id),
    client_ack: async (presence, frame) => {
      const { acked, refusal } = deps.limits.ackedWithin(presence, frame.messageIds);
      const refused: Reply | undefined = refusal ? { type: "error", code: refusal.code, message: refusal.message } : undefined;
      try {
        await deps.pump.ack(presence, acked);
      } catch (error) {
        // The refusal is the answer whatever the apply does: it counts as a refused frame.
        if (!refused) throw error;
      }
      return refused;
    },
    set_status: async (presence, frame) => {
      const result = await deps.status.apply(presence.presenceId, { status: frame.status, source: frame.source });
      if (!result) return { type: "error", code: "internal", message: "this presence has ended" };
      deps.log.info(
        { presenceId: presence.presenceId, status: result.status, source: frame.source, applied: result.applied },
        "ws set_status",
      );
      return { type: "status", status: result.status, statusSource: result.statusSource };
    },
    join: async (presence, frame) => {
      const joined = await deps.channels.join(presence.meshId, frame.channel, presence.memberId);
      if (!joined.ok) return { type: "error", code: joined.code, message: joined.message };
      return { type: "ack", channel: frame.channel, joined: true };
    },
    leave: async (presence, frame) => {
      await deps.channels.leave(presence.meshId, frame.channel, presence.memberId);
      return { type: "ack", channel: frame.channel, joined: false };
    },
    list_peers: async (presence) => ({ type: "peers", peers: await deps.peers.list(presence.meshId) }),
    ping: async () => ({ type: "pong", serverTime: deps.clock() }),
    // One event kind exists (presence); subscribing again restarts it with a fresh snapshot.
    subscribe: async (presence) => {
      // Run after earlier frames: the socket may have closed meanwhile, and its end unsubscribed nothing yet.
      if (presence.ended) return { type: "error", code: "internal", message: "this presence has ended" };
      const subscription = await deps.presenceEvents.subscribe(presence.presenceId, presence.meshId, (event) =>
        presence.link.presenceEvent(event),
      );
      return { reply: { type: "ack", subscribed: ["presence"] }, afterReply: () => subscription.start() };
    },
    unsubscribe: async (presence) => {
      deps.presenceEvents.unsubscribe(presence.presenceId);
      return { type: "ack", subscribed: [] };
    },
    history: async (presence, frame) => {
      const outcome = await deps.history.read(presence, { channel: frame.target, before: frame.before, limit: frame.limit });
      if (!outcome.ok) return { type: "error", code: outcome.code, message: outcome.message };
      return { type: "history", target: frame.target, messages: outcome.messages.map((m) => pushFrame(m, 0)), more: outcome.more };
    },
  };
}

/** Runs the frame's handler, unless the member sent more of its kind than its limit allows. */
export function dispatch(
  handlers: FrameHandlers,
  limits: FrameLimits,
  presence: LocalPresence,
  frame: SessionFrame,
): Promise<Answer | undefined> {
  // Acks are limited by the ids they carry, in their own handler.
  const limited = frame.type === "client_ack" ? null : limits.check(presence, frame);
  if (limited) return Promise.resolve({ type: "error", code: limited.code, message: limited.message });
  // TypeScript cannot correlate handlers[frame.type] with frame itself.
  const handler = handlers[frame.type] as FrameHandler<typeof frame.type>;
  return handler(presence, frame as never);
}

/** Durable sends and acks join a group commit: they need not wait for the frame before them to finish. */
export const overlaps = (frame: SessionFrame): boolean =>
  (frame.type === "send" && !frame.ephemeral) || frame.type === "client_ack";
