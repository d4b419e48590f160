/**
 * Strict UTF-8 for text that queuectl must keep exactly. A lossy decode turns
 * each invalid byte into U+FFFD, so a command would be stored (and later run)
 * changed; queuectl refuses such input instead, naming the first bad byte.
 *
 * @module
 */

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The offset of the first byte that does not begin a well-formed UTF-8
 * sequence (Unicode table 3-7), or -1 when all of `bytes` is well formed.
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const length = sequenceLength(bytes, i);
    if (length === 0) return i;
    i += length;
  }
  return -1;
}

/** The length of the well-formed sequence at `i`, or 0 when none starts there. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const lead = bytes[i];
  if (lead < 0x80) return 1;
  const cont = (k: number, low = 0x80, high = 0xbf) =>
    i + k < bytes.length && bytes[i + k] >= low && bytes[i + k] <= high;
  if (lead >= 0xc2 && lead <= 0xdf) return cont(1) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    // E0 would allow overlong forms below A0; ED would allow the surrogates from A0.
    const low = lead === 0xe0 ? 0xa0 : 0x80;
    const high = lead === 0xed ? 0x9f : 0xbf;
    return cont(1, low, high) && cont(2) ? 3 : 0;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    const low = lead === 0xf0 ? 0x90 : 0x80;
    const high = lead === 0xf4 ? 0x8f : 0xbf;
    return cont(1, low, high) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/**
 * Decodes UTF-8 that must be well formed, keeping a leading BOM as text.
 *
 * @returns the text, or undefined when `bytes` is not valid UTF-8
 */
export function decodeStrictUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strict.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Bytes shown on each side of the bad one in {@linkcode invalidUtf8Message}. */
const CONTEXT_BYTES = 24;

/**
 * The error message for input that is not UTF-8: the first invalid byte with
 * the text around it (other invalid bytes and control characters as `\xNN`),
 * and how to write such a byte instead.
 *
 * @param subject what the input is, e.g. `argument 2` or `job file line 3`
 * @param offset the first invalid byte, from {@linkcode invalidUtf8Offset}
 */
export function invalidUtf8Message(subject: string, bytes: Uint8Array, offset: number): string {
  const from = Math.max(0, offset - CONTEXT_BYTES);
  const to = Math.min(bytes.length, offset + CONTEXT_BYTES);
  const shown = `${from > 0 ? "…" : ""}${escapedText(bytes.subarray(from, to))}${
    to < bytes.length ? "…" : ""
  }`;
  const byte = bytes[offset];
  return `${subject} is not valid UTF-8 (byte 0x${hex(byte)} in '${shown}'); queuectl would ` +
    `store it changed, so it refuses it: write such bytes as shell escapes, e.g. printf '\\${
      byte.toString(8)
    }'`;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** Text of `bytes` on one line: invalid bytes and control characters as `\xNN`. */
function escapedText(bytes: Uint8Array): string {
  let text = "";
  let i = 0;
  while (i < bytes.length) {
    const length = sequenceLength(bytes, i);
    if (length === 0 || bytes[i] < 0x20 || bytes[i] === 0x7f) {
      text += `\\x${hex(bytes[i])}`;
      i++;
    } else {
      text += strict.decode(bytes.subarray(i, i + length));
      i += length;
    }
  }
  return text;
}
