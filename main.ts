/**
 * queuectl: a durable background job queue for shell commands.
 *
 * Run `deno run -A main.ts --help` from a checkout, or `./queuectl --help`
 * once compiled.
 *
 * @module
 */

import { runCli } from "./lib/cli/main.ts";
import { QueueError, UsageError } from "./lib/errors.ts";
import { invalidUtf8Message, invalidUtf8Offset } from "./lib/utf8.ts";

/** Whether `bytes` are the ASCII characters of `text`, one byte each. */
function isAsciiText(bytes: Uint8Array, text: string): boolean {
  if (bytes.length !== text.length) return false;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] > 0x7f || bytes[i] !== text.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * The arguments exactly as given. Deno drops a trailing carriage return from
 * each argument (meant for CRLF shebang lines), which would silently change
 * an id or a command, and turns bytes that are not UTF-8 into U+FFFD. On
 * Linux the untouched arguments are read back from /proc: used wherever they
 * differ from Deno.args only by that, and refused when they are not UTF-8.
 *
 * @throws {UsageError} for an argument that is not valid UTF-8
 */
function exactArgs(): string[] {
  const args = Deno.args;
  if (Deno.build.os !== "linux" || args.length === 0) return args;
  let raw: Uint8Array[];
  try {
    const cmdline = Deno.readFileSync("/proc/self/cmdline");
    raw = [];
    for (let start = 0, end; (end = cmdline.indexOf(0, start)) !== -1; start = end + 1) {
      raw.push(cmdline.subarray(start, end));
    }
  } catch {
    return args;
  }
  const tail = raw.slice(-args.length);
  // The common case, checked without a decoder (about 0.1 ms less at start-up): every argument
  // plain ASCII and byte for byte as given, so that Deno neither dropped nor replaced anything.
  if (tail.length === args.length && tail.every((bytes, i) => isAsciiText(bytes, args[i]))) {
    return args;
  }
  // Decoded as Deno decodes them, so that the two can be compared.
  const lossy = new TextDecoder("utf-8", { ignoreBOM: true });
  const texts = tail.map((bytes) => lossy.decode(bytes));
  const matches = tail.length === args.length &&
    texts.every((arg, i) => arg === args[i] || arg.replace(/\r+$/, "") === args[i]);
  if (!matches) return args;
  tail.forEach((bytes, i) => {
    if (!texts[i].includes("\ufffd")) return;
    // A U+FFFD typed as such is fine; one that stands for an invalid byte is not.
    const offset = invalidUtf8Offset(bytes);
    if (offset !== -1) {
      throw new UsageError(invalidUtf8Message(`argument ${i + 1}`, bytes, offset));
    }
  });
  return texts;
}

/** Runs the CLI and maps every error to one line on stderr and an exit code. */
async function main(): Promise<number> {
  try {
    return await runCli(exactArgs());
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    const message = error instanceof Error ? error.message : String(error);
    const firstLine = message.split("\n")[0];
    if (error instanceof UsageError) {
      console.error(`queuectl: ${firstLine}`);
      return 2;
    }
    console.error(`queuectl: ${error instanceof QueueError ? "" : "error: "}${firstLine}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main());
