// Typing indicators are ephemeral channel messages whose payload is
// {"switchboard.typing": true|false}. Receivers time a true out, so a
// sender that vanished mid-sentence does not type forever.
import type { Message, TypingInfo } from "./types.ts";

export const TYPING_KEY = "switchboard.typing";
/** A typing signal counts this long; senders repeat it while typing. */
export const TYPING_TIMEOUT_MS = 6000;

export function typingPayload(typing: boolean): Record<string, boolean> {
  return { [TYPING_KEY]: typing };
}

/**
 * The typing signal a message is, or null. Only an ephemeral message is one:
 * a stored message with the same payload was meant to be read (and, given
 * again after a reconnect, would show a typing long past).
 */
export function typingOf(message: Message): boolean | null {
  if (!message.ephemeral) return null;
  const p = message.payload;
  if (typeof p !== "object" || p === null || Array.isArray(p)) return null;
  const keys = Object.keys(p);
  const value = (p as Record<string, unknown>)[TYPING_KEY];
  return keys.length === 1 && typeof value === "boolean" ? value : null;
}

export class TypingTracker {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly emit: (info: TypingInfo) => void,
    private readonly timeoutMs = TYPING_TIMEOUT_MS,
  ) {}

  receive(channel: string, senderPubkey: string, typing: boolean): void {
    const key = `${channel} ${senderPubkey}`;
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    if (typing) {
      this.timers.set(
        key,
        setTimeout(() => {
          this.timers.delete(key);
          this.emit({ channel, senderPubkey, typing: false });
        }, this.timeoutMs),
      );
    }
    this.emit({ channel, senderPubkey, typing });
  }

  dispose(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
