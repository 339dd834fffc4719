// Bytes read as the UTF-8 text they must be: decoded anyway, each byte that
// is not UTF-8 would become U+FFFD, and a message's ciphertext (or an id) be
// stored altered. ignoreBOM: a leading byte order mark stays in the text (a
// JSON body or frame with one is then refused by JSON.parse, as JSON has none).
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The text, or null when the bytes are not UTF-8. */
export function utf8Text(bytes: Uint8Array): string | null {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}
