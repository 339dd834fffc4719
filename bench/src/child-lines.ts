// The lines a child process writes on stdout, one at a time as they come:
// the robustness bench's helper processes (the latency probe, the storm)
// report on their stdout, a JSON value or a word per line.
export async function* linesOf(stdout: ReadableStream<Uint8Array<ArrayBuffer>>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    yield* lines;
  }
}
