/**
 * Full-screen terminal drawing for `top`: the alternate screen, a hidden
 * cursor, raw keyboard input, and lines fitted to the terminal's size so
 * that nothing wraps or scrolls. Lines are measured and cut by output.ts,
 * the same way tables are; text that comes from users (commands, errors)
 * goes through its `sanitize` first, so a job cannot move the cursor or
 * change colours on someone's screen.
 *
 * @module
 */

import { displayWidth, fitWidth, writeOut } from "./output.ts";

const ESC = "\x1b";
const ALT_SCREEN_ON = `${ESC}[?1049h`;
const ALT_SCREEN_OFF = `${ESC}[?1049l`;
const CURSOR_HIDE = `${ESC}[?25l`;
const CURSOR_SHOW = `${ESC}[?25h`;
const RESET = `${ESC}[0m`;

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
    writeOut(`${ALT_SCREEN_ON}${CURSOR_HIDE}${ESC}[H${ESC}[2J`);
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
      const fitted = fitWidth(line, size.columns);
      // Erasing after a line that fills the row would erase its last character.
      const erase = displayWidth(fitted) < size.columns ? `${ESC}[K` : "";
      frame += `${ESC}[${i + 1};1H${fitted}${RESET}${erase}`;
    });
    if (shown.length < size.rows) frame += `${ESC}[${shown.length + 1};1H${ESC}[J`;
    writeOut(frame);
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
        writeOut(`${RESET}${CURSOR_SHOW}${ALT_SCREEN_OFF}`);
      } catch {
        // As above.
      }
    }
  }
}
