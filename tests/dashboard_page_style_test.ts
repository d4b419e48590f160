/**
 * The dashboard pages' colours (lib/dashboard/page_style.ts) meet WCAG AA in
 * light and dark: 4.5:1 for every text colour on the page and panel
 * backgrounds, 3:1 for the lines that outline controls.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PAGE_STYLE } from "../lib/dashboard/page_style.ts";

/** The custom properties (`--name: #rrggbb`) of the first rule after `marker` in the style. */
function colours(marker: string): Record<string, string> {
  const start = PAGE_STYLE.indexOf(marker);
  assert.notEqual(start, -1, `no ${marker} in the style`);
  const block = PAGE_STYLE.slice(start, PAGE_STYLE.indexOf("}", start));
  return Object.fromEntries(
    [...block.matchAll(/--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;/g)].map((m) => [m[1], m[2]]),
  );
}

/** Relative luminance of an sRGB colour, as WCAG 2 defines it. */
function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG 2 contrast ratio of two colours. */
function contrast(a: string, b: string): number {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
}

Deno.test("contrast: the WCAG formula gives 21 for black on white and 1 for a colour on itself", () => {
  assert.equal(Math.round(contrast("#000000", "#ffffff") * 100) / 100, 21);
  assert.equal(contrast("#0a55c2", "#0a55c2"), 1);
});

for (const [scheme, marker] of [["light", ":root {"], ["dark", "prefers-color-scheme: dark"]]) {
  Deno.test(`dashboard pages: every text colour meets WCAG AA in ${scheme} mode`, () => {
    const palette = colours(marker);
    for (const text of ["fg", "muted", "link", "danger", "ok", "warn", "focus"]) {
      for (const background of ["bg", "panel"]) {
        assert.ok(
          palette[text] && palette[background],
          `--${text} and --${background} in ${scheme}`,
        );
        const ratio = contrast(palette[text], palette[background]);
        assert.ok(ratio >= 4.5, `${scheme}: --${text} on --${background} is ${ratio.toFixed(2)}:1`);
      }
    }
    const outline = contrast(palette.line, palette.bg);
    assert.ok(outline >= 3, `${scheme}: --line on --bg is ${outline.toFixed(2)}:1`);
  });
}
