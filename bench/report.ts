/**
 * The run's report: one object that becomes both the JSON file and the
 * Markdown table, so the two always carry the same figures.
 *
 * @module
 */

import type { Figure, MachineInfo, Sizes } from "./util.ts";

/** Everything one `deno task bench` run measured. */
export interface Report {
  machine: MachineInfo;
  startedAt: string;
  durationSeconds: number;
  sizes: Sizes;
  benchmarks: string[];
  figures: Figure[];
  details: Record<string, unknown>;
  /** queuectl misbehaving in a way that did not stop a benchmark. */
  problems: string[];
  /** Benchmarks that could not finish, with why. */
  errors: { benchmark: string; message: string }[];
  /** Processes found still running in a temp dir after a benchmark (killed). */
  leftovers: string[];
}

/** Formats a value in its unit, with precision suited to its size. */
export function formatValue(value: number, unit: string): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  const text = value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return `${text} ${unit}`;
}

function formatRatio(figure: Figure): string {
  if (figure.ratio === null) return "n/a (baseline 0)";
  const digits = figure.ratio >= 100 ? 0 : figure.ratio >= 10 ? 1 : 2;
  return `${figure.ratio.toFixed(digits)}× (${figure.better} is better)`;
}

/** Pipes would end a Markdown cell early. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** The report as Markdown: a machine line, the table, then any problems. */
export function renderMarkdown(report: Report): string {
  const lines = [
    `**Machine:** ${report.machine.line}`,
    "",
    `Run: ${report.startedAt}, ${report.durationSeconds.toFixed(0)} s, ` +
    `${report.sizes.quick ? "quick sizes" : "default sizes"}; benchmarks: ${
      report.benchmarks.join(", ")
    }. Ratio = queuectl ÷ baseline, both measured in this run.`,
    "",
    "| Benchmark | Figure | queuectl | Baseline | Ratio | Notes |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const f of report.figures) {
    lines.push(
      `| ${
        [
          f.benchmark,
          f.name,
          formatValue(f.value, f.unit),
          `${f.baseline.label}: ${formatValue(f.baseline.value, f.baseline.unit)}`,
          formatRatio(f),
          f.note ?? "",
        ].map(cell).join(" | ")
      } |`,
    );
  }
  if (report.errors.length > 0) {
    lines.push("", "**Benchmarks that failed:**", "");
    for (const e of report.errors) lines.push(`- ${e.benchmark}: ${e.message}`);
  }
  if (report.problems.length > 0) {
    lines.push("", "**Problems seen in queuectl:**", "");
    for (const p of report.problems) lines.push(`- ${p}`);
  }
  if (report.leftovers.length > 0) {
    lines.push("", "**Processes left running after a benchmark (killed):**", "");
    for (const p of report.leftovers) lines.push(`- ${p}`);
  }
  return lines.join("\n") + "\n";
}
