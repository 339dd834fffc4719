// A history reply as the application's page: the messages opened (one that
// does not open is reported and left out), and where the page before starts.
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from "@switchboard/protocol";
import type { SwitchboardError } from "./errors.ts";
import type { Inbox } from "./inbox.ts";
import type { HistoryPage, Message } from "./types.ts";
import type { PushFrame } from "./wire.ts";

export function historyPage(
  pushes: PushFrame[],
  more: boolean | undefined,
  limit: number | undefined,
  inbox: Inbox,
  onError: (e: SwitchboardError) => void,
): HistoryPage {
  const messages: Message[] = [];
  for (const push of pushes) {
    const opened = inbox.open(push);
    if (opened.kind === "message") messages.push(opened.message);
    else onError(opened.unreadable.error);
  }
  // The broker says whether older ones are left; one from before it said so
  // ended its pages at the limit alone: a full page may have older ones
  // before it, a short one is the start of the history.
  const older = more ?? pushes.length >= Math.min(limit ?? HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT);
  return { messages, before: older ? (pushes[0]?.messageId ?? null) : null };
}
