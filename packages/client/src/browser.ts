// The SDK without its Node-only parts (the transcript status fallback reads
// files): what a web page imports, and what Bun.build bundles into
// dist/switchboard.browser.js. HttpSender needs only fetch, verifyWebhook
// only WebCrypto (HMAC-SHA256), so both are here.
export { generateKeypair, publicKeyOf } from "@switchboard/protocol";
export { backoffDelay, isFinalHelloCode, type ReconnectPolicy } from "./backoff.ts";
export { SwitchboardClient } from "./client.ts";
export { DEFAULT_HEARTBEAT_MS, MAX_ACK_DELAY_MS } from "./config.ts";
export { SwitchboardError } from "./errors.ts";
export {
  HttpSender,
  type HttpRequestOptions,
  type HttpRequestResult,
  type HttpSenderOptions,
  type HttpSendOptions,
  type HttpSendResult,
} from "./http-sender.ts";
export { TYPING_KEY, TYPING_TIMEOUT_MS } from "./typing.ts";
export type {
  ClientEvents,
  ClientOptions,
  CloseInfo,
  ConnectFailure,
  ConnectionState,
  HistoryOptions,
  HistoryPage,
  Message,
  PeerInfo,
  PresenceEvent,
  PresenceInfo,
  ReconnectOptions,
  ReplyOptions,
  RequestOptions,
  SendOptions,
  SendResult,
  StatusInfo,
  TokenSource,
  TypingInfo,
  UnreadableMessage,
  WebSocketClass,
  WebSocketLike,
} from "./types.ts";
export { verifyWebhook, type HeaderSource, type VerifyOptions } from "./webhook-signature.ts";
