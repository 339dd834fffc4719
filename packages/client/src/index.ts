export * from "./browser.ts";
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
export { verifyWebhook, type HeaderSource, type VerifyOptions } from "./webhook-signature.ts";
