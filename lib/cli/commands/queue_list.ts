/**
 * `queuectl queue list`: every queue that holds jobs, is paused or has
 * limits, with its limits and how full they are, and its jobs by state.
 *
 * @module
 */

import { queueToJson } from "../../json_shapes.ts";
import { formatDuration } from "../../duration.ts";
import { JOB_STATES } from "../../states.ts";
import type { CommandContext } from "../context.ts";
import {
  formatTable,
  paintWarning,
  printJson,
  type TableColumn,
  useColour,
  writeOut,
} from "../output.ts";

/** Runs `queue list`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const store = await openStore();
  try {
    const queues = await store.listQueues(store.now());
    if (args.options.json) {
      printJson(queues.map(queueToJson));
      return 0;
    }
    if (queues.length === 0) {
      writeOut("no queues yet\n");
      return 0;
    }
    const colour = useColour();
    const columns: TableColumn[] = [
      { header: "QUEUE" },
      { header: "STATUS", paint: (cell) => cell === "paused" ? paintWarning(cell, true) : cell },
      { header: "RUNNING", align: "right" },
      { header: "RATE", align: "right" },
      ...JOB_STATES.map((s, i): TableColumn => ({
        header: s.toUpperCase(),
        align: "right",
        drop: i + 1,
      })),
    ];
    const rows = queues.map((q) => [
      q.name,
      q.pausedAt === null ? "active" : "paused",
      q.limits.concurrency === null
        ? String(q.counts.processing)
        : `${q.counts.processing}/${q.limits.concurrency}`,
      q.limits.rate === null
        ? "-"
        : `${q.recentStarts}/${q.limits.rate.starts} per ${formatDuration(q.limits.rate.periodMs)}`,
      ...JOB_STATES.map((s) => String(q.counts[s])),
    ]);
    writeOut(formatTable(columns, rows, { colour }));
    return 0;
  } finally {
    await store.close();
  }
}
