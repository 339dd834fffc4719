// What commands print: aligned tables for people, one JSON value per line
// for scripts. Writes wait for the stream so nothing is lost on exit.
type Stream = NodeJS.WriteStream;

function write(stream: Stream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

export const out = (line: string): Promise<void> => write(process.stdout, `${line}\n`);
export const err = (line: string): Promise<void> => write(process.stderr, `${line}\n`);
export const outJson = (value: unknown): Promise<void> => out(JSON.stringify(value));

/** Columns padded to the widest cell; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
  return all
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** Text on one line: line breaks and tabs shown as escapes. */
export function oneLine(text: string): string {
  return text.replace(/\r/g, "\\r").replace(/\n/g, "\\n").replace(/\t/g, "\\t");
}

export function shortKey(pubkey: string): string {
  return pubkey.slice(0, 8);
}
