/**
 * Writing to stdout and stderr, whole and unbuffered. Apart from output.ts
 * (tables, colours, widths) so that commands that print only lines, like
 * `enqueue`, load nothing more at start-up.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Writes text to stdout as is, all of it. */
export function writeOut(text: string | Uint8Array): void {
  writeAll(Deno.stdout, typeof text === "string" ? encoder.encode(text) : text);
}

/** Writes text to stderr as is, all of it. */
export function writeErr(text: string | Uint8Array): void {
  writeAll(Deno.stderr, typeof text === "string" ? encoder.encode(text) : text);
}

function writeAll(target: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += target.writeSync(bytes.subarray(offset));
}
