/**
 * Pick-up latency and idle CPU of `worker start --count 2`.
 *
 * Latency: an idle worker process; jobs are enqueued one at a time, each
 * recording its own start with `date +%s%N`; latency is that time minus the
 * job's `created_at`. Baseline: the cost of spawning the same
 * `sh -c 'date …'` straight from Deno, so that readers see what part is
 * queuectl's.
 *
 * Idle CPU: utime+stime of an idle worker process over a window, against a
 * bare sleeping `deno run`.
 *
 * @module
 */

import {
  type BenchResult,
  cliOk,
  clockTicksPerSecond,
  type Figure,
  figure,
  initDb,
  listAll,
  LongProcess,
  median,
  percentile,
  progress,
  readCpuTicks,
  round,
  seededRandom,
  type Sizes,
  sleep,
  waitRegistered,
  wallNow,
  withTempDir,
} from "./util.ts";

/** The job: `date` writes one line in one write(), so a file ending in "\n" is complete. */
const RECORD_START = "date +%s%N > t/$QUEUECTL_JOB_ID";
/** How long one job may take to start before the benchmark calls it a hang, in ms. */
const START_TIMEOUT_MS = 15_000;
/** The largest random gap between one job's start and the next enqueue, in ms. */
const MAX_GAP_MS = 50;

/** Waits for `path` to hold a complete line, and returns it as epoch ms. */
export async function recordedStartMs(
  path: string,
  timeoutMs: number,
): Promise<number | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      const text = await Deno.readTextFile(path);
      if (text.endsWith("\n")) return Number(text.trim()) / 1e6;
    } catch {
      // Not there yet.
    }
    await sleep(1);
  }
  return undefined;
}

/** p50 of the time from just before a Deno spawn to the command's own recorded start. */
async function spawnBaseline(dir: string, runs: number, viaSetsid: boolean): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const file = `t/base-${viaSetsid ? "setsid-" : ""}${i}`;
    const shell = ["sh", "-c", `date +%s%N > ${file}`];
    const [program, ...args] = viaSetsid ? ["setsid", ...shell] : shell;
    const before = wallNow();
    const out = await new Deno.Command(program, {
      args,
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    if (!out.success) throw new Error(`baseline spawn of ${program} failed`);
    const started = await recordedStartMs(`${dir}/${file}`, 5_000);
    if (started === undefined) throw new Error("baseline spawn wrote no time");
    samples.push(started - before);
  }
  return samples;
}

async function measureLatency(
  dir: string,
  sizes: Sizes,
  problems: string[],
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const n = sizes.latencyJobs;
  await Deno.mkdir(`${dir}/t`);
  const db = `${dir}/latency.db`;
  await initDb(db, dir);

  // Warm the page cache for sh and date before either side is measured.
  await spawnBaseline(dir, 5, false);
  const plain = await spawnBaseline(dir, n, false);
  const viaSetsid = await spawnBaseline(dir, n, true);

  const worker = LongProcess.worker(db, ["--count", "2"], dir, "worker-latency.log");
  try {
    await waitRegistered(db, dir, worker);
    await sleep(1_000); // Let both Web Workers open their connections and go idle.
    const random = seededRandom(42);
    const recorded = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const id = `lat-${String(i).padStart(4, "0")}`;
      await cliOk(db, ["enqueue", "--id", id, RECORD_START], { cwd: dir });
      const started = await recordedStartMs(`${dir}/t/${id}`, START_TIMEOUT_MS);
      if (started === undefined) {
        throw new Error(
          `hang: job ${id} did not start within ${START_TIMEOUT_MS} ms of being enqueued ` +
            `(worker log: ${await worker.logTail()})`,
        );
      }
      recorded.set(id, started);
      // A random gap, so that enqueues do not fall into step with the workers' polling.
      await sleep(random() * MAX_GAP_MS);
    }
    const jobs = await listAll(db, dir);
    const latency: number[] = [];
    const claimDelay: number[] = [];
    const spawnPart: number[] = [];
    for (const job of jobs) {
      const start = recorded.get(job.id);
      if (start === undefined) continue;
      const created = Date.parse(job.created_at);
      latency.push(start - created);
      if (job.started_at) {
        claimDelay.push(Date.parse(job.started_at) - created);
        spawnPart.push(start - Date.parse(job.started_at));
      }
    }
    if (latency.length !== n) problems.push(`latency: ${latency.length} of ${n} jobs listed`);
    const stopProblem = await worker.stop();
    if (stopProblem) problems.push(stopProblem);

    const base = median(plain);
    const baseline = {
      label: "Deno spawn of sh -c 'date …', p50",
      value: base,
      unit: "ms",
    };
    const p50 = percentile(latency, 50);
    const p99 = percentile(latency, 99);
    const breakdown =
      `claim (started_at − created_at) p50 ${
        median(claimDelay).toFixed(1)
      } ms, then spawn to the command's own start p50 ${median(spawnPart).toFixed(1)} ms ` +
      `(setsid sh spawned from Deno: ${median(viaSetsid).toFixed(1)} ms)`;
    return {
      figures: [
        figure(
          "latency",
          `pick-up p50, ${n} jobs one at a time, worker --count 2`,
          p50,
          "ms",
          baseline,
          "lower",
          `command's own start (date +%s%N) − created_at (whole ms); ${breakdown}`,
        ),
        figure(
          "latency",
          `pick-up p99, same ${n} jobs`,
          p99,
          "ms",
          baseline,
          "lower",
          `max ${Math.max(...latency).toFixed(1)} ms`,
        ),
      ],
      details: {
        jobs: n,
        latencyMs: {
          p50: round(p50),
          p90: round(percentile(latency, 90)),
          p99: round(p99),
          max: round(Math.max(...latency)),
          min: round(Math.min(...latency)),
        },
        claimDelayMs: { p50: round(median(claimDelay)), p99: round(percentile(claimDelay, 99)) },
        spawnToCommandMs: { p50: round(median(spawnPart)), p99: round(percentile(spawnPart, 99)) },
        baselineSpawnMs: { p50: round(base), p99: round(percentile(plain, 99)) },
        baselineSetsidSpawnMs: { p50: round(median(viaSetsid)) },
        samplesMs: latency.map((x) => round(x, 2)),
      },
    };
  } finally {
    if (worker.running) await worker.stop();
  }
}

async function measureIdleCpu(
  dir: string,
  sizes: Sizes,
  problems: string[],
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const db = `${dir}/idle.db`;
  await initDb(db, dir);
  const ticksPerSecond = await clockTicksPerSecond();
  // Both run at once: each is idle, so neither disturbs the other, and the run is shorter.
  const bare = await LongProcess.bareDeno(dir);
  const worker = LongProcess.worker(db, ["--count", "2"], dir, "worker-idle.log");
  try {
    await waitRegistered(db, dir, worker);
    await sleep(2_000); // Start-up work (module loading, migrations) is not idling.
    const t0 = performance.now();
    const worker0 = readCpuTicks(worker.pid);
    const bare0 = readCpuTicks(bare.pid);
    await sleep(sizes.idleSeconds * 1000);
    const workerTicks = readCpuTicks(worker.pid) - worker0;
    const bareTicks = readCpuTicks(bare.pid) - bare0;
    const seconds = (performance.now() - t0) / 1000;
    const percent = (ticks: number) => (ticks / ticksPerSecond) / seconds * 100;
    const stopProblem = await worker.stop();
    if (stopProblem) problems.push(stopProblem);
    return {
      figures: [
        figure(
          "idle CPU",
          `worker --count 2, idle ${sizes.idleSeconds} s`,
          percent(workerTicks),
          "% of a core",
          { label: "bare deno run, sleeping", value: percent(bareTicks), unit: "% of a core" },
          "lower",
          `utime+stime from /proc/PID/stat: ${workerTicks} vs ${bareTicks} ticks ` +
            `(1 tick = ${(1000 / ticksPerSecond).toFixed(0)} ms)`,
        ),
      ],
      details: { seconds: round(seconds), ticksPerSecond, workerTicks, bareTicks },
    };
  } finally {
    if (worker.running) await worker.stop();
    await bare.stop();
  }
}

/** Runs the pick-up latency and idle CPU measurements; either may fail alone. */
export function runLatency(sizes: Sizes): Promise<BenchResult> {
  return withTempDir("latency", async (dir) => {
    const problems: string[] = [];
    const errors: string[] = [];
    const figures: Figure[] = [];
    const details: Record<string, unknown> = {};
    const parts = [
      ["pickUp", `${sizes.latencyJobs} jobs, one at a time`, measureLatency],
      ["idleCpu", `idle CPU over ${sizes.idleSeconds} s`, measureIdleCpu],
    ] as const;
    for (const [key, what, measure] of parts) {
      progress(`latency: ${what}`);
      try {
        const part = await measure(dir, sizes, problems);
        figures.push(...part.figures);
        details[key] = part.details;
      } catch (error) {
        errors.push(`${key}: ${(error as Error).message}`);
      }
    }
    if (figures.length === 0) throw new Error(errors.join("; "));
    return { figures, details, problems, errors };
  });
}
