/**
 * `queuectl show`: every field of one job, the jobs it runs after, and its
 * runs so far.
 *
 * @module
 */

import { formatDuration } from "../../duration.ts";
import { JobNotFoundError, UsageError } from "../../errors.ts";
import { type AttemptRecord, type Job, jobToJson } from "../../job.ts";
import { jobDetailToJson, readJobDetail } from "../../json_shapes.ts";
import type { Dependency } from "../../store/store.ts";
import type { CommandContext } from "../context.ts";
import {
  exactAndRelative,
  formatTable,
  humanDuration,
  paintState,
  printJson,
  relativeTime,
  sanitize,
  type TableColumn,
  terminalColumns,
  useColour,
  writeOut,
} from "../output.ts";

/** Reads the single `<id>` argument of a command. */
export function singleId(positionals: string[], command: string): string {
  if (positionals.length === 0) throw new UsageError(`missing job id: queuectl ${command} <id>`);
  if (positionals.length > 1) throw new UsageError(`${command} takes one job id`);
  return positionals[0];
}

/** Fields of the JSON form that hold epoch-ms times in the job record. */
const TIME_FIELDS: Record<string, keyof Job> = {
  run_at: "runAt",
  created_at: "createdAt",
  updated_at: "updatedAt",
  started_at: "startedAt",
  finished_at: "finishedAt",
};

const INDENT = "  ";

/** Text that may span lines, each line cleaned, later lines indented under the first. */
function multiline(text: string, indent: number): string {
  return text.split(/\r?\n/).map(sanitize).join(`\n${" ".repeat(indent)}`);
}

/** A job's variables, one `NAME=value` a line (a value's line breaks as spaces: --json has them). */
function envLines(env: Record<string, string>): string {
  const names = Object.keys(env);
  return names.length === 0
    ? "-"
    : names.map((name) => `${name}=${sanitize(env[name])}`).join("\n");
}

/** The key-value lines of a job for people. */
function fieldLines(job: Job, after: Dependency[], now: number, colour: boolean): string[] {
  const fields: [string, string][] = Object.entries(jobToJson(job)).map(([key, value]) => {
    if (key in TIME_FIELDS) {
      return [key, exactAndRelative(job[TIME_FIELDS[key]] as number | null, now)];
    }
    if (value === null) return [key, "-"];
    if (key === "state") return [key, paintState(job.state, colour)];
    if (key === "timeout_ms") return [key, `${value} (${formatDuration(value as number)})`];
    if (key === "env") return [key, envLines(job.env)];
    return [key, String(value)];
  });
  fields.push([
    "after",
    after.length === 0
      ? "-"
      : after.map((dep) =>
        `${dep.id} (${dep.state === null ? "deleted" : paintState(dep.state, colour)})`
      ).join(", "),
  ]);
  const width = Math.max(...fields.map(([key]) => key.length));
  return fields.map(([key, value]) => {
    const text = key === "command" || key === "last_error" || key === "cwd" || key === "env"
      ? multiline(value, width + 2)
      : value;
    return `${key.padEnd(width)}  ${text}`;
  });
}

/**
 * The history table for people: every finished run, and the one in progress.
 * On a narrow terminal the error is cut first, then ENDED and STARTED are
 * left out, then the error is cut to its header and left out too.
 */
function historyLines(
  job: Job,
  attempts: AttemptRecord[],
  now: number,
  colour: boolean,
): string[] {
  const running = job.state === "processing" && job.startedAt !== null;
  const runs = attempts.length + (running ? 1 : 0);
  if (runs === 0) return ["History: no runs yet"];
  const columns: TableColumn[] = [
    { header: "#", align: "right" },
    { header: "STARTED", drop: 2 },
    { header: "ENDED", drop: 1 },
    { header: "TOOK", align: "right" },
    { header: "EXIT", align: "right" },
    { header: "ERROR", cut: 1, minWidth: 16 },
  ];
  const rows = attempts.map((a) => [
    String(a.attempt),
    relativeTime(a.startedAt, now),
    relativeTime(a.finishedAt, now),
    a.startedAt === null ? "-" : humanDuration(a.finishedAt - a.startedAt),
    a.exitCode === null ? "-" : String(a.exitCode),
    a.error ?? "-",
  ]);
  if (running) {
    rows.push([
      String(job.attempts),
      relativeTime(job.startedAt, now),
      "running",
      humanDuration(now - job.startedAt!),
      "-",
      "-",
    ]);
  }
  const columnsLeft = terminalColumns();
  const table = formatTable(columns, rows, {
    width: columnsLeft === undefined ? null : columnsLeft - INDENT.length,
    colour,
  });
  return [
    `History: ${runs} run${runs === 1 ? "" : "s"}`,
    ...table.trimEnd().split("\n").map((line) => INDENT + line),
  ];
}

/** Runs `show`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const id = singleId(args.positionals, "show");
  const store = await openStore();
  try {
    const detail = await readJobDetail(store, id);
    if (!detail) throw new JobNotFoundError(id);
    if (args.options.json) {
      printJson(jobDetailToJson(detail));
      return 0;
    }
    const { job, after, attempts } = detail;
    const now = store.now();
    const colour = useColour();
    const lines = [
      ...fieldLines(job, after, now, colour),
      "",
      ...historyLines(job, attempts, now, colour),
    ];
    writeOut(lines.join("\n") + "\n");
    return 0;
  } finally {
    await store.close();
  }
}
