/**
 * The dashboard pages' style sheet, served as `/assets/dashboard.css`
 * (lib/dashboard/page.ts). A module that exports a string, so that the
 * release bundle carries it with the code (text imports are unstable).
 * Light and dark follow `prefers-color-scheme`; colours keep a contrast of
 * 4.5:1 or more for text (WCAG AA); below 40rem tables become one block per
 * row, so that the pages work 360 px wide.
 *
 * @module
 */

/** The CSS of every page. */
export const PAGE_STYLE = String.raw`
:root {
  color-scheme: light dark;
  --bg: #ffffff;
  --fg: #1b1b1b;
  --muted: #4f4f4f;
  --line: #8a8a8a;
  --panel: #f3f4f6;
  --link: #0a55c2;
  --focus: #0a55c2;
  --danger: #a8231b;
  --ok: #176126;
  --warn: #7a4b00;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  line-height: 1.45;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #121417;
    --fg: #e9eaec;
    --muted: #b5b8bd;
    --line: #80858c;
    --panel: #1e2227;
    --link: #8cb8ff;
    --focus: #8cb8ff;
    --danger: #ffaba4;
    --ok: #8fd99c;
    --warn: #f0c674;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
a { color: var(--link); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 0.5rem; top: 0.5rem; background: var(--bg); padding: 0.25rem 0.5rem; }
header { border-bottom: 1px solid var(--line); padding: 0.5rem 1rem; display: flex;
  flex-wrap: wrap; gap: 0.25rem 1rem; align-items: baseline; }
header .brand { font-weight: 700; }
nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; margin: 0; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
main { padding: 0.5rem 1rem 2rem; max-width: 80rem; }
h1 { font-size: 1.5rem; margin: 0.5rem 0; }
h2 { font-size: 1.2rem; margin: 1.25rem 0 0.5rem; }
h3 { font-size: 1rem; margin: 1rem 0 0.25rem; }
.notice { min-height: 1.5rem; margin: 0; padding: 0.25rem 1rem; }
.notice.error { color: var(--danger); font-weight: 600; }
.muted { color: var(--muted); }
.counts { display: grid; grid-template-columns: repeat(auto-fill, minmax(8.5rem, 1fr));
  gap: 0.5rem; margin: 0; }
.counts > div { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: 0.5rem 0.75rem; }
.counts dt { font-size: 0.9rem; }
.counts dd { margin: 0; font-size: 1.6rem; font-weight: 700; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.35rem 0.5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.9rem; }
td code { overflow-wrap: anywhere; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 0.5rem;
  white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.25rem 0; }
.state { font-weight: 600; }
.state-dead, .state-failed { color: var(--danger); }
.state-completed { color: var(--ok); }
.state-processing { color: var(--warn); }
button { font: inherit; color: var(--fg); background: var(--panel); border: 1px solid var(--line);
  border-radius: 4px; padding: 0.2rem 0.6rem; min-height: 2rem; cursor: pointer; margin: 0.1rem; }
button:hover { border-color: var(--fg); }
button.danger { color: var(--danger); }
form.filters { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; align-items: end; margin: 0.5rem 0 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: 0.9rem; gap: 0.15rem; }
input, select { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line);
  border-radius: 4px; padding: 0.2rem 0.4rem; min-height: 2rem; max-width: 100%; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0; }
dl.fields dt { font-weight: 600; }
dl.fields dd { margin: 0; overflow-wrap: anywhere; }
.pager { display: flex; gap: 1rem; margin: 1rem 0; }
.actions { white-space: nowrap; }
.bulk { display: flex; flex-wrap: wrap; gap: 0.5rem; }
ul.running { margin: 0; padding-left: 1.1rem; }
figure.chart { margin: 0; }
details { margin: 0 0 1rem; }
summary { cursor: pointer; }
figure.chart svg { display: block; width: 100%; height: 8rem; background: var(--panel);
  border: 1px solid var(--line); border-radius: 6px; }
.bar-ok { fill: var(--ok); }
.bar-failed { fill: var(--danger); }
.axis { stroke: var(--line); stroke-width: 1; }
figure.chart figcaption { font-size: 0.9rem; margin-top: 0.25rem; }
@media (max-width: 40rem) {
  table.rows, table.rows tbody, table.rows tr, table.rows td { display: block; width: 100%; }
  table.rows thead { position: absolute; left: -9999px; }
  table.rows caption { display: block; text-align: left; }
  table.rows tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 0.5rem;
    padding: 0.25rem 0; }
  table.rows td { border: 0; padding: 0.15rem 0.5rem; text-align: left; }
  table.rows td::before { content: attr(data-label) ": "; font-weight: 600; }
  table.rows td.actions { white-space: normal; }
  table.rows td.actions::before { content: ""; }
  dl.fields { grid-template-columns: 1fr; }
  dl.fields dd { margin-bottom: 0.35rem; }
}
`;
