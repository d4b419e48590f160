/**
 * `queuectl status`: jobs by state, overall and per queue (paused queues
 * marked, limits with how full they are), and the live workers.
 *
 * @module
 */

import { type StatusData, statusToJson } from "../../json_shapes.ts";
import { listLiveWorkers } from "../../live_workers.ts";
import { limitsUsage } from "../../queue_limits.ts";
import { JOB_STATES, type JobState } from "../../states.ts";
import type { QueueSummary, Store } from "../../store/store.ts";
import type { CommandContext } from "../context.ts";
import {
  formatTable,
  paintState,
  paintWarning,
  printJson,
  relativeTime,
  sanitize,
  type TableColumn,
  useColour,
  writeOut,
} from "../output.ts";

/** Sections below a heading are indented by this much. */
const INDENT = "  ";

/**
 * The order in which a terminal too narrow for the queue table leaves its
 * count columns out, after PAUSED (1): counts that need no one's attention go first.
 */
const COUNT_DROP_ORDER: Record<JobState, number> = {
  completed: 2,
  blocked: 3,
  failed: 4,
  dead: 5,
  processing: 6,
  pending: 7,
};

/**
 * The per-queue table: one row per queue, a column per state. It starts at
 * the left edge (not indented) so that a queue with every column fits 80
 * terminal columns. Queue names are never cut; on a narrower terminal
 * PAUSED is left out first, then the counts in {@linkcode COUNT_DROP_ORDER}.
 */
function queueTable(queues: QueueSummary[], now: number, colour: boolean): string {
  const columns: TableColumn[] = [
    { header: "QUEUE" },
    {
      header: "STATUS",
      paint: (cell) => cell === "paused" ? paintWarning(cell, true) : cell,
    },
    { header: "PAUSED", drop: 1 },
    ...JOB_STATES.map((s): TableColumn => ({
      header: s.toUpperCase(),
      align: "right",
      drop: COUNT_DROP_ORDER[s],
    })),
  ];
  const rows = queues.map((q) => [
    q.name,
    q.pausedAt === null ? "active" : "paused",
    q.pausedAt === null ? "-" : relativeTime(q.pausedAt, now),
    ...JOB_STATES.map((s) => String(q.counts[s])),
  ]);
  return formatTable(columns, rows, { colour });
}

/**
 * Reads what `status` shows (also for the dashboard's `GET /api/status`);
 * here rather than in lib/json_shapes.ts, which `list` and `show` load:
 * finding the live workers loads the worker's code.
 */
export async function readStatus(store: Store): Promise<StatusData> {
  const counts = await store.countByState();
  const queues = await store.listQueues();
  const now = store.now();
  const workers = await listLiveWorkers(store, now);
  return { counts, queues, workers, now };
}

/** Runs `status`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const store = await openStore();
  try {
    const status = await readStatus(store);
    if (args.options.json) {
      printJson(statusToJson(status));
      return 0;
    }
    const { counts, queues, workers, now } = status;
    const colour = useColour();
    const width = Math.max(...JOB_STATES.map((s) => s.length));
    const lines = [
      "Jobs:",
      ...JOB_STATES.map((s) =>
        `${INDENT}${paintState(s, colour)}${" ".repeat(width - s.length)}  ${counts[s]}`
      ),
      "",
    ];
    const paused = queues.filter((q) => q.pausedAt !== null).length;
    if (queues.length === 0) {
      lines.push("Queues: none yet");
    } else {
      lines.push(
        `Queues: ${queues.length}${
          paused > 0 ? `, ${paintWarning(`${paused} paused`, colour)}` : ""
        }`,
        queueTable(queues, now, colour).trimEnd(),
      );
      const limited = queues.filter((q) => limitsUsage(q.limits, 0, 0) !== "");
      if (limited.length > 0) lines.push("", "Limits:");
      for (const q of limited) {
        lines.push(
          `${INDENT}${q.name}: ${limitsUsage(q.limits, q.counts.processing, q.recentStarts)}`,
        );
      }
    }
    const threads = workers.reduce((sum, w) => sum + w.threads, 0);
    lines.push(
      "",
      `Workers: ${workers.length} process${
        workers.length === 1 ? "" : "es"
      }, ${threads} running job${threads === 1 ? "" : "s"} at most`,
    );
    for (const w of workers) {
      lines.push(
        `${INDENT}${sanitize(w.id)}  pid ${w.pid} on ${sanitize(w.host)}, ${w.threads} worker${
          w.threads === 1 ? "" : "s"
        }, started ${relativeTime(w.startedAt, now)}${
          w.stopRequested ? ` ${paintWarning("(stopping)", colour)}` : ""
        }`,
      );
    }
    writeOut(lines.join("\n") + "\n");
    return 0;
  } finally {
    await store.close();
  }
}
