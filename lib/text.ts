/**
 * Making user text (commands, errors, names) safe to print on a terminal.
 * Imports nothing, so that the runner (a Web Worker) can use it without
 * loading the CLI's table code.
 *
 * @module
 */

/**
 * Makes user text safe to print on one line of a terminal: line breaks and
 * tabs become single spaces, and whatever else a terminal would act on
 * rather than print (C0 and C1 controls such as ESC, DEL, bidirectional
 * overrides) becomes `?`, so a job's command cannot move the cursor,
 * recolour the screen or reorder a line.
 */
export function sanitize(text: string): string {
  return text
    .replace(/[ \t]*[\r\n\v\f\u2028\u2029]\s*/g, " ")
    .replace(/\t/g, " ")
    // deno-lint-ignore no-control-regex
    .replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, "?");
}

/**
 * Makes text safe as one line of a log: like {@linkcode sanitize}, but a
 * line break is shown as `\n` (or `\r`), so that one event stays one line
 * and the break in a command or an error is still visible.
 */
export function escapeLine(text: string): string {
  return sanitize(text.replace(/\r/g, "\\r").replace(/\n/g, "\\n"));
}
