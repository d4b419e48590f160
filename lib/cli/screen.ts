/**
 * Full-screen terminal drawing for `top`: the alternate screen, a hidden
 * cursor, raw keyboard input, and lines fitted to the terminal's size so
 * that nothing wraps or scrolls. Text that comes from users (commands,
 * errors) is cleaned of control characters first, so a job cannot move the
 * cursor or change colours on someone's screen.
 *
 * @module
 */

const encoder = new TextEncoder();

const ESC = "\x1b";
const ALT_SCREEN_ON = `${ESC}[?1049h`;
const ALT_SCREEN_OFF = `${ESC}[?1049l`;
const CURSOR_HIDE = `${ESC}[?25l`;
const CURSOR_SHOW = `${ESC}[?25h`;
const RESET = `${ESC}[0m`;

/** An SGR sequence (colours), the only escape the screen itself puts into lines. */
// deno-lint-ignore no-control-regex
const SGR = /^\x1b\[[0-9;]*m/;

/**
 * Replaces what a terminal would act on rather than print: line breaks and
 * tabs become spaces, other control characters (C0, DEL, C1) and the
 * bidirectional overrides become `?`.
 */
export function sanitize(text: string): string {
  return text
    .replace(/[\r\n\t\v\f]+/g, " ")
    // deno-lint-ignore no-control-regex
    .replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, "?");
}

/** Whether a code point takes no column: combining marks and zero-width characters. */
function isZeroWidth(char: string, code: number): boolean {
  return (code >= 0x200b && code <= 0x200f) || code === 0x2060 || code === 0xfeff ||
    (code >= 0xfe00 && code <= 0xfe0f) || /\p{M}/u.test(char);
}

/** Whether a code point takes two columns: East Asian wide and fullwidth forms, and emoji. */
function isWide(code: number): boolean {
  return (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0x303e) ||
    (code >= 0x3041 && code <= 0x33ff) || (code >= 0x3400 && code <= 0x4dbf) ||
    (code >= 0x4e00 && code <= 0x9fff) || (code >= 0xa000 && code <= 0xa4cf) ||
    (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60) ||
    (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x1f300 && code <= 0x1f64f) ||
    (code >= 0x1f900 && code <= 0x1f9ff) || (code >= 0x20000 && code <= 0x3fffd);
}

/** Columns one (non-escape) character takes. */
function charWidth(char: string): number {
  const code = char.codePointAt(0)!;
  if (isZeroWidth(char, code)) return 0;
  return isWide(code) ? 2 : 1;
}

/** Columns a line takes on a terminal; colour sequences take none. */
export function displayWidth(line: string): number {
  let width = 0;
  for (let i = 0; i < line.length;) {
    const sgr = line[i] === ESC ? SGR.exec(line.slice(i)) : null;
    if (sgr) {
      i += sgr[0].length;
      continue;
    }
    const char = String.fromCodePoint(line.codePointAt(i)!);
    width += charWidth(char);
    i += char.length;
  }
  return width;
}

/**
 * Cuts a line to at most `columns` columns, ending it with `…` when cut.
 * Colour sequences are kept, and reset after a cut so that no colour leaks.
 */
export function fitLine(line: string, columns: number): string {
  if (columns <= 0) return "";
  if (displayWidth(line) <= columns) return line;
  let out = "";
  let width = 0;
  let coloured = false;
  for (let i = 0; i < line.length;) {
    const sgr = line[i] === ESC ? SGR.exec(line.slice(i)) : null;
    if (sgr) {
      out += sgr[0];
      coloured = true;
      i += sgr[0].length;
      continue;
    }
    const char = String.fromCodePoint(line.codePointAt(i)!);
    const w = charWidth(char);
    if (width + w > columns - 1) break;
    out += char;
    width += w;
    i += char.length;
  }
  return `${out}…${coloured ? RESET : ""}`;
}

/** Rows and columns of a terminal. */
export interface ScreenSize {
  rows: number;
  columns: number;
}

/** One block of a screen: a heading line and item lines, cut when space runs short. */
export interface Section {
  heading: string;
  items: string[];
  /**
   * Takes every row it needs once each section shows its first few items,
   * before the others take more.
   */
  first?: boolean;
  /** The items are only the start of a longer list, of unknown length. */
  partial?: boolean;
}

/** Items every section shows, space allowing, before any shows more. */
const FAIR_SHARE = 3;

/**
 * Lays sections out in at most `rows` lines. Each section gets its heading;
 * then the sections take one item line each in turn, up to a few each, so
 * that a long list cannot push the others off the screen; then the `first`
 * sections take what they need; then the rest share what is left in turn.
 * The heading of a section that cannot show all its items says how many
 * are left out.
 */
export function layoutSections(sections: readonly Section[], rows: number): string[][] {
  if (rows < sections.length) {
    // Not even every heading fits: show the first ones.
    return sections.slice(0, Math.max(0, rows)).map((s) => [s.heading]);
  }
  const shown = sections.map(() => 0);
  let left = rows - sections.length;
  const inTurn = (cap: number) => {
    let progress = true;
    while (left > 0 && progress) {
      progress = false;
      sections.forEach((section, i) => {
        if (left > 0 && shown[i] < Math.min(cap, section.items.length)) {
          shown[i]++;
          left--;
          progress = true;
        }
      });
    }
  };
  inTurn(FAIR_SHARE);
  sections.forEach((section, i) => {
    if (!section.first) return;
    const more = Math.min(section.items.length - shown[i], left);
    shown[i] += more;
    left -= more;
  });
  inTurn(Infinity);
  return sections.map((section, i) => {
    const hidden = section.items.length - shown[i];
    const note = section.partial ? "  (more not shown)" : `  (${hidden} more not shown)`;
    return [
      hidden > 0 || section.partial ? `${section.heading}${note}` : section.heading,
      ...section.items.slice(0, shown[i]),
    ];
  });
}

/**
 * The terminal, taken over for a full-screen view: alternate screen, hidden
 * cursor, raw input. {@linkcode FullScreen.restore} gives it back as it
 * was; it is safe to call more than once and never throws, since it runs on
 * the way out of errors too.
 */
export class FullScreen {
  #active = false;
  #raw = false;

  /** Switches to the alternate screen, hides the cursor and turns raw input on. */
  enter(): void {
    this.#active = true;
    write(`${ALT_SCREEN_ON}${CURSOR_HIDE}${ESC}[H${ESC}[2J`);
    Deno.stdin.setRaw(true);
    this.#raw = true;
  }

  /** The terminal's size; 80×24 when it cannot be read. */
  size(): ScreenSize {
    try {
      const { rows, columns } = Deno.consoleSize();
      if (rows > 0 && columns > 0) return { rows, columns };
    } catch {
      // Not readable: fall back below.
    }
    return { rows: 24, columns: 80 };
  }

  /**
   * Draws `lines` from the top-left corner, at most one per row, each cut to
   * the width, and clears whatever the last frame left below them. Rows are
   * addressed directly, so nothing relies on newlines (raw mode may leave
   * them as bare line feeds) and nothing scrolls.
   */
  draw(lines: readonly string[], size: ScreenSize = this.size()): void {
    const shown = lines.slice(0, size.rows);
    let frame = "";
    shown.forEach((line, i) => {
      const fitted = fitLine(line, size.columns);
      // Erasing after a line that fills the row would erase its last character.
      const erase = displayWidth(fitted) < size.columns ? `${ESC}[K` : "";
      frame += `${ESC}[${i + 1};1H${fitted}${RESET}${erase}`;
    });
    if (shown.length < size.rows) frame += `${ESC}[${shown.length + 1};1H${ESC}[J`;
    write(frame);
  }

  /** Gives the terminal back: raw input off, cursor shown, main screen back. */
  restore(): void {
    if (this.#raw) {
      this.#raw = false;
      try {
        Deno.stdin.setRaw(false);
      } catch {
        // The terminal is gone (hung up): nothing to give back.
      }
    }
    if (this.#active) {
      this.#active = false;
      try {
        write(`${RESET}${CURSOR_SHOW}${ALT_SCREEN_OFF}`);
      } catch {
        // As above.
      }
    }
  }
}

function write(text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}
