/**
 * Memory: resident memory (VmRSS) of `worker start --count N`, idle and with
 * every worker running a `sleep 1` job, against a bare sleeping `deno run`.
 * The jobs' own processes are separate and not counted.
 *
 * @module
 */

import {
  type BenchResult,
  cliOk,
  type Figure,
  figure,
  initDb,
  LongProcess,
  progress,
  readRssBytes,
  round,
  type Sizes,
  sleep,
  statusJson,
  waitRegistered,
  withTempDir,
} from "./util.ts";

/** How long a process idles before its memory is read, in ms. */
const SETTLE_MS = 2_000;
/** Jobs per worker, so every worker stays busy while memory is sampled. */
const JOBS_PER_WORKER = 3;
const MIB = 2 ** 20;

interface Sample {
  count: number;
  idle: number;
  /** Undefined when not every worker got busy: a read then would not mean "busy". */
  busy?: number;
}

/** Waits until `status` shows `count` jobs processing; returns false on timeout. */
async function waitAllBusy(db: string, cwd: string, count: number): Promise<boolean> {
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    if ((await statusJson(db, cwd)).jobs.processing >= count) return true;
    await sleep(20);
  }
  return false;
}

async function measure(dir: string, count: number, problems: string[]): Promise<Sample> {
  const db = `${dir}/memory-${count}.db`;
  await initDb(db, dir);
  const worker = LongProcess.worker(db, ["--count", String(count)], dir, `worker-${count}.log`);
  try {
    await waitRegistered(db, dir, worker);
    await sleep(SETTLE_MS);
    const idle = readRssBytes(worker.pid);

    const file = `${dir}/sleep-${count}.jsonl`;
    await Deno.writeTextFile(file, '"sleep 1"\n'.repeat(count * JOBS_PER_WORKER));
    await cliOk(db, ["enqueue", "--file", file], { cwd: dir });
    let busy: number | undefined;
    if (await waitAllBusy(db, dir, count)) {
      // A few reads while all run: a job's output buffers and a spawn come and go.
      busy = 0;
      for (let i = 0; i < 5; i++) {
        busy = Math.max(busy, readRssBytes(worker.pid));
        await sleep(100);
      }
    } else {
      problems.push(
        `--count ${count}: ${count * JOBS_PER_WORKER} \`sleep 1\` jobs enqueued, but status ` +
          `never showed ${count} processing within 15 s; busy memory not reported ` +
          `(worker log: ${await worker.logTail()})`,
      );
    }
    const stopProblem = await worker.stop();
    if (stopProblem) problems.push(stopProblem);
    return { count, idle, busy };
  } finally {
    if (worker.running) await worker.stop();
  }
}

/** Runs the memory benchmark. */
export function runMemory(sizes: Sizes): Promise<BenchResult> {
  return withTempDir("memory", async (dir) => {
    const problems: string[] = [];
    const errors: string[] = [];
    const bare = await LongProcess.bareDeno(dir);
    const samples: Sample[] = [];
    let bareRss: number;
    try {
      await sleep(SETTLE_MS);
      bareRss = readRssBytes(bare.pid);
      for (const count of sizes.memoryCounts) {
        progress(`memory: worker --count ${count}`);
        try {
          samples.push(await measure(dir, count, problems));
        } catch (error) {
          errors.push(`--count ${count}: ${(error as Error).message}`);
        }
      }
    } finally {
      await bare.stop();
    }
    const baseline = { label: "bare deno run, sleeping", value: bareRss / MIB, unit: "MiB" };
    const figures: Figure[] = [];
    for (const s of samples) {
      figures.push(
        figure("memory", `worker --count ${s.count}, idle`, s.idle / MIB, "MiB", baseline, "lower"),
      );
      if (s.busy === undefined) continue;
      figures.push(
        figure(
          "memory",
          `worker --count ${s.count}, every worker running \`sleep 1\``,
          s.busy / MIB,
          "MiB",
          baseline,
          "lower",
          "max of 5 VmRSS reads 100 ms apart; the jobs' own processes not included",
        ),
      );
    }
    const first = samples[0];
    const last = samples[samples.length - 1];
    if (first && last && last.count > first.count) {
      const extra = last.count - first.count;
      for (const kind of ["idle", "busy"] as const) {
        const low = first[kind];
        const high = last[kind];
        if (low === undefined || high === undefined) continue;
        figures.push(
          figure(
            "memory",
            `each additional worker, ${kind}`,
            (high - low) / extra / MIB,
            "MiB",
            baseline,
            "lower",
            `(rss${last.count} − rss${first.count}) ÷ ${extra}`,
          ),
        );
      }
    }
    if (samples.length === 0) throw new Error(errors.join("; "));
    return {
      figures,
      details: {
        bareRssBytes: bareRss,
        samples: samples.map((s) => ({
          count: s.count,
          idleMiB: round(s.idle / MIB, 1),
          busyMiB: s.busy === undefined ? null : round(s.busy / MIB, 1),
        })),
      },
      problems,
      errors,
    };
  });
}
