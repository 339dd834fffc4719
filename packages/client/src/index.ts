export { generateKeypair, publicKeyOf } from "@switchboard/protocol";
export { backoffDelay, isFinalHelloCode, type ReconnectPolicy } from "./backoff.ts";
export { SwitchboardClient } from "./client.ts";
export { SwitchboardError } from "./errors.ts";
export {
  HttpSender,
  type HttpRequestOptions,
  type HttpRequestResult,
  type HttpSenderOptions,
  type HttpSendOptions,
  type HttpSendResult,
} from "./http-sender.ts";
export {
  inferStatusFromTranscript,
  transcriptDir,
  watchTranscriptStatus,
  type StatusSink,
  type TranscriptStatus,
} from "./transcript.ts";
export type {
  ClientEvents,
  ClientOptions,
  CloseInfo,
  Message,
  PeerInfo,
  ReconnectOptions,
  ReplyOptions,
  RequestOptions,
  SendOptions,
  SendResult,
  StatusInfo,
  UnreadableMessage,
} from "./types.ts";
export { verifyWebhook, type HeaderSource, type VerifyOptions } from "./webhook-signature.ts";
