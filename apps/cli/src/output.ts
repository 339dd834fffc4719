// What commands print: aligned tables for people, one JSON value per line
// for scripts. Writes wait for the stream so nothing is lost on exit.
type Stream = NodeJS.WriteStream;

function write(stream: Stream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

export const out = (line: string): Promise<void> => write(process.stdout, `${line}\n`);

/** stdout's reader is gone (`switchboard peers | head -1`): it has what it wanted, so this is a normal end. */
export const isClosedPipe = (error: unknown): boolean => error instanceof Error && "code" in error && error.code === "EPIPE";
export const err = (line: string): Promise<void> => write(process.stderr, `${line}\n`);
export const outJson = (value: unknown): Promise<void> => out(JSON.stringify(value));

/** Columns padded to the widest cell; the last column is not padded. Cells are shown on one line (oneLine). */
export function table(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows.map((row) => row.map(oneLine))];
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

// Characters a terminal acts on rather than shows: C0 and C1 controls,
// DEL, and the bidirectional overrides that reorder what follows.
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { "\r": "\\r", "\n": "\\n", "\t": "\\t" };

/**
 * Text on one line, safe for a terminal: line breaks and tabs as escapes,
 * any other control character as its code. What peers write (messages,
 * display names, session ids, cwds) cannot move the cursor, forge lines or
 * reach the terminal's own commands.
 */
export function oneLine(text: string): string {
  return text.replace(CONTROLS, (c) => NAMED[c] ?? `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/**
 * The line a send prints; a send that matched nobody says so rather than "to
 * 0 recipient(s)", and one that skipped members whose queue is full says how many.
 */
export function sentLine(sent: { messageId: string; recipients: number; fullQueues: number }, how: string): string {
  const { messageId, recipients, fullQueues } = sent;
  const skipped = fullQueues === 0 ? "" : `; not to ${fullQueues} member(s) whose queue is full (MAX_QUEUED_PER_MEMBER)`;
  if (recipients === 0 && fullQueues === 0) return `sent ${messageId}, but no member receives it: nobody else matches the target (${how})`;
  return `sent ${messageId} to ${recipients} recipient(s) (${how})${skipped}`;
}

export function shortKey(pubkey: string): string {
  return pubkey.slice(0, 8);
}
