export * from "./browser.ts";
export {
  inferStatusFromTranscript,
  transcriptDir,
  watchTranscriptStatus,
  type StatusSink,
  type TranscriptStatus,
} from "./transcript.ts";
