/**
 * Throughput: N no-op jobs (`true`) enqueued with `enqueue --file` and run by
 * `worker start --count C --drain`, against `xargs -P C` running the same N
 * commands.
 *
 * @module
 */

import {
  type BenchResult,
  cliOk,
  clockTicksPerSecond,
  type CpuTicks,
  type Figure,
  figure,
  initDb,
  listAll,
  LongProcess,
  median,
  progress,
  readCpuTimes,
  removeDb,
  round,
  runTimed,
  type Sizes,
  wallNow,
  withTempDir,
} from "./util.ts";
import { FLOOR_MODES, type FloorMode, type LaunchFloor } from "./launch_floor.ts";

/**
 * The same N commands run with `lanes` lanes and no queue (see
 * launch_floor.ts): what "jobs run through Deno.Command" alone allows.
 */
async function launchFloor(
  dir: string,
  n: number,
  lanes: number,
  mode: FloorMode,
): Promise<LaunchFloor> {
  const script = new URL("./launch_floor.ts", import.meta.url).pathname;
  const args = ["run", "-A", script, String(n), String(lanes), dir, mode];
  const run = await runTimed(Deno.execPath(), args, { cwd: dir, timeoutMs: 300_000 });
  if (run.code !== 0) throw new Error(`launch floor exited with ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as LaunchFloor;
}

interface Round {
  /** Enqueue start to the largest finished_at, in ms (finished_at is whole ms). */
  toLastMs: number;
  /** Enqueue start to the exit of the draining worker process, in ms. */
  toDrainExitMs: number;
  enqueueMs: number;
  xargsMs: number;
  /** The same commands with no queue, each way of starting them, and the store with no commands (see launchFloor). */
  floors: Record<FloorMode, LaunchFloor>;
  /** CPU of xargs and every command it ran, in ms. */
  xargsCpuMs: number;
  /** CPU of the worker process itself, and of the jobs it ran, in ms. */
  workerCpuMs: number;
  jobsCpuMs: number;
}

/**
 * Samples a process's CPU times until it exits; the last sample is taken at
 * most `everyMs` before its exit, so the shutdown after the last job is
 * mostly left out (a few per cent of the total with 500 jobs).
 */
async function sampleCpuUntilExit(process: LongProcess, everyMs = 20): Promise<CpuTicks> {
  let last: CpuTicks = { own: 0, children: 0 };
  while (process.running) {
    try {
      last = readCpuTimes(process.pid);
    } catch {
      break; // It has exited.
    }
    await Promise.race([process.exited, new Promise((resolve) => setTimeout(resolve, everyMs))]);
  }
  return last;
}

/** Where one benchmark run keeps its inputs. */
interface Inputs {
  dir: string;
  n: number;
  rounds: number;
  jobsFile: string;
  xargsFile: string;
}

/** All rounds at one worker count; throws when any round is not a clean, complete run. */
async function measureCount(
  { dir, n, rounds: roundCount, jobsFile, xargsFile }: Inputs,
  count: number,
  details: Record<string, unknown>,
): Promise<Figure[]> {
  const rounds: Round[] = [];
  const msPerTick = 1000 / await clockTicksPerSecond();
  for (let r = 0; r < roundCount; r++) {
    // The shell prints its own /proc stat line once xargs is reaped: its
    // children's CPU is then xargs's and that of every command xargs ran.
    const xargs = await runTimed(
      "sh",
      [
        "-c",
        'xargs "$@" && cat /proc/$$/stat',
        "sh",
        "-a",
        xargsFile,
        "-P",
        String(count),
        "-n",
        "1",
        "sh",
        "-c",
      ],
      { cwd: dir, timeoutMs: 300_000 },
    );
    if (xargs.code !== 0) throw new Error(`xargs baseline exited with ${xargs.code}`);
    const xargsCpuMs = readCpuTimes(0, xargs.stdout).children * msPerTick;
    const floors = {} as Record<FloorMode, LaunchFloor>;
    for (const mode of FLOOR_MODES) floors[mode] = await launchFloor(dir, n, count, mode);
    // The store's share: the same N jobs claimed and recorded with no command run.
    await removeDb(`${dir}/store.db`);
    await initDb(`${dir}/store.db`, dir);
    await cliOk(`${dir}/store.db`, ["enqueue", "--file", jobsFile], {
      cwd: dir,
      timeoutMs: 300_000,
    });
    floors.store = await launchFloor(dir, n, count, "store");

    const db = `${dir}/tp-${count}-${r}.db`;
    // Creating the schema is a one-time cost of a new queue, not part of running jobs.
    await initDb(db, dir);
    const startWall = wallNow();
    const start = performance.now();
    const enqueue = await cliOk(db, ["enqueue", "--file", jobsFile], {
      cwd: dir,
      timeoutMs: 300_000,
    });
    const worker = LongProcess.worker(
      db,
      ["--count", String(count), "--drain"],
      dir,
      `worker-${count}-${r}.log`,
    );
    const cpu = sampleCpuUntilExit(worker);
    const code = await worker.waitExit(600_000);
    const drainExit = performance.now();
    const workerCpu = await cpu;
    if (code === undefined) {
      const stopped = await worker.stop(5_000);
      throw new Error(
        `hang: worker start --count ${count} --drain did not exit within 600 s` +
          (stopped ? `; ${stopped}` : ""),
      );
    }
    if (code !== 0) {
      throw new Error(
        `worker start --count ${count} --drain exited with ${code} (log: ${await worker
          .logTail()})`,
      );
    }

    const jobs = await listAll(db, dir);
    const notDone = jobs.filter((j) => j.state !== "completed");
    if (jobs.length !== n || notDone.length > 0) {
      // Without every job completed, "time to the last completion" means nothing.
      throw new Error(
        `--count ${count}: ${jobs.length} jobs listed, ${notDone.length} not completed ` +
          `after --drain exited (e.g. ${notDone[0]?.id} ${notDone[0]?.state})`,
      );
    }
    const lastFinished = Math.max(
      ...jobs.map((j) => j.finished_at ? Date.parse(j.finished_at) : 0),
    );
    const round_: Round = {
      toLastMs: lastFinished - startWall,
      toDrainExitMs: drainExit - start,
      enqueueMs: enqueue.ms,
      xargsMs: xargs.ms,
      floors,
      xargsCpuMs,
      workerCpuMs: workerCpu.own * msPerTick,
      jobsCpuMs: workerCpu.children * msPerTick,
    };
    rounds.push(round_);
    progress(
      `throughput --count ${count} round ${r + 1}/${roundCount}: ` +
        `queuectl ${(round_.toLastMs / 1000).toFixed(2)} s to last finish ` +
        `(${(round_.toDrainExitMs / 1000).toFixed(2)} s to drain exit), ` +
        `xargs ${(round_.xargsMs / 1000).toFixed(2)} s, executor alone ${
          (round_.floors.executor.ms / 1000).toFixed(2)
        } s`,
    );
    await removeDb(db);
  }

  const toLast = median(rounds.map((x) => x.toLastMs));
  const toExit = median(rounds.map((x) => x.toDrainExitMs));
  const enqueueMs = median(rounds.map((x) => x.enqueueMs));
  const xargsMs = median(rounds.map((x) => x.xargsMs));
  const rate = (ms: number) => n / (ms / 1000);
  const floorMs = median(rounds.map((x) => x.floors.executor.ms));
  const floorRate = (mode: FloorMode) => rate(median(rounds.map((x) => x.floors[mode].ms)));
  /** CPU per run of a launch floor: the launching process's own, and its children's, in ms. */
  const floorCpu = (mode: FloorMode) => ({
    own: round(median(rounds.map((x) => x.floors[mode].ownTicks)) * msPerTick / n, 3),
    children: round(median(rounds.map((x) => x.floors[mode].childTicks)) * msPerTick / n, 3),
  });
  const floorLine = (mode: FloorMode, what: string) => {
    const cpu = floorCpu(mode);
    return `${what} ${Math.round(floorRate(mode))} jobs/s = ${
      (floorRate(mode) / rate(xargsMs)).toFixed(2)
    }× xargs, CPU per run ${cpu.own.toFixed(2)} (Deno) + ${cpu.children.toFixed(2)} ms (children)`;
  };
  const perJob = (pick: (x: Round) => number) => median(rounds.map(pick)) / n;
  const xargsCpu = perJob((x) => x.xargsCpuMs);
  const workerCpu = perJob((x) => x.workerCpuMs);
  const jobsCpu = perJob((x) => x.jobsCpuMs);
  const cores = navigator.hardwareConcurrency;
  details[`count${count}`] = {
    rounds: rounds.map((x) => ({
      toLastMs: round(x.toLastMs, 1),
      toDrainExitMs: round(x.toDrainExitMs, 1),
      enqueueMs: round(x.enqueueMs, 1),
      xargsMs: round(x.xargsMs, 1),
      floors: x.floors,
      xargsCpuMs: round(x.xargsCpuMs, 1),
      workerCpuMs: round(x.workerCpuMs, 1),
      jobsCpuMs: round(x.jobsCpuMs, 1),
    })),
    cpuMsPerJob: {
      xargs: round(xargsCpu, 3),
      workerProcess: round(workerCpu, 3),
      itsJobs: round(jobsCpu, 3),
    },
    medianLaunchFloorJobsPerSec: Object.fromEntries(
      FLOOR_MODES.map((mode) => [mode, round(floorRate(mode), 1)]),
    ),
    launchFloorCpuMsPerJob: Object.fromEntries(
      FLOOR_MODES.map((mode) => [mode, floorCpu(mode)]),
    ),
    medianJobsPerSecToLast: round(rate(toLast), 1),
    medianJobsPerSecToDrainExit: round(rate(toExit), 1),
    medianXargsJobsPerSec: round(rate(xargsMs), 1),
  };
  const queueFigure = figure(
    "throughput",
    `${n.toLocaleString("en-US")} × \`true\`, worker --count ${count}`,
    rate(toLast),
    "jobs/s",
    { label: `xargs -P ${count} -n 1 sh -c`, value: rate(xargsMs), unit: "jobs/s" },
    "higher",
    `enqueue start → last finished_at: ${(toLast / 1000).toFixed(2)} s ` +
      `(enqueue ${Math.round(enqueueMs)} ms of it); to --drain exit ` +
      `${(toExit / 1000).toFixed(2)} s = ${Math.round(rate(toExit))} jobs/s; ` +
      `xargs ${(xargsMs / 1000).toFixed(2)} s; median of ${rounds.length}`,
  );
  const floorFigure = figure(
    "throughput",
    `launch path alone: the workers' executor, ${count} lane${count === 1 ? "" : "s"}, no queue`,
    rate(floorMs),
    "jobs/s",
    { label: `xargs -P ${count} -n 1 sh -c`, value: rate(xargsMs), unit: "jobs/s" },
    "higher",
    `queuectl reaches ${(rate(toLast) / rate(floorMs)).toFixed(2)}× of this. ` +
      [
        floorLine("executor", "Executor (own session, sh + status wrapper, output piped):"),
        floorLine("executor-no-cgroup", "the same without the cgroup:"),
        floorLine("spawn", "the fast launcher's sh -c true (own session, output piped):"),
        floorLine("setsid", "setsid sh -c true via Deno.Command(…).output():"),
        floorLine("bare", "bare sh -c true the same way:"),
      ].join("; ") + `; median of ${rounds.length}`,
  );
  // On a machine whose cores the baseline already keeps busy, the rate ratio
  // cannot beat the CPU-per-job ratio: this figure says where the CPU goes.
  const cpuFigure = figure(
    "throughput",
    `CPU per job, worker --count ${count} (worker process + the processes of its jobs)`,
    workerCpu + jobsCpu,
    "ms",
    { label: `xargs -P ${count}, and what it ran`, value: xargsCpu, unit: "ms" },
    "lower",
    `worker process ${workerCpu.toFixed(2)} ms (claim, spawn, output, record) + its jobs ` +
      `${jobsCpu.toFixed(2)} ms (setsid, sh with the status wrapper); 0.9× of xargs's rate ` +
      `leaves at most ${(cores * 1000 / (0.9 * rate(xargsMs))).toFixed(2)} ms of CPU per job ` +
      `on ${cores} cores; xargs kept ${
        Math.round(xargsCpu * n / xargsMs * 100)
      }% of a core busy of ${cores * 100}%; utime+stime from /proc, median of ${rounds.length}`,
  );
  const store = floorCpu("store").own;
  /** The rate at which the executor's and the store's CPU per job alone keep every core busy. */
  const ceiling = (mode: FloorMode) => {
    const cpu = floorCpu(mode);
    return cores * 1000 / (cpu.own + cpu.children + store);
  };
  const ceilingLine = (mode: FloorMode, what: string) => {
    const cpu = floorCpu(mode);
    return `${what}: ${cpu.own.toFixed(2)} + ${cpu.children.toFixed(2)} + ${
      store.toFixed(2)
    } ms = ${Math.round(ceiling(mode))} jobs/s = ${
      (ceiling(mode) / rate(xargsMs)).toFixed(2)
    }× xargs`;
  };
  // What the guarantees cost before anything else does: were the worker to
  // add nothing to its executor's and its store's CPU, and every core to stay
  // busy, it could not run jobs faster than this.
  const ceilingFigure = figure(
    "throughput",
    `ceiling at --count ${count}: every core busy with only the executor's and the store's CPU per job`,
    ceiling("executor"),
    "jobs/s",
    { label: `xargs -P ${count} -n 1 sh -c`, value: rate(xargsMs), unit: "jobs/s" },
    "higher",
    `queuectl reaches ${(rate(toLast) / ceiling("executor")).toFixed(2)}× of this. ` +
      `${cores} cores ÷ CPU per job (launching process + its children + the store's ` +
      `finish-and-claim, ${store.toFixed(3)} ms in-process): ` +
      [
        ceilingLine("executor", "with a cgroup and status file per run"),
        ceilingLine("executor-no-cgroup", "without the cgroup"),
        ceilingLine("spawn", "the fast launcher's bare sh -c true (no status, no cgroup)"),
      ].join("; ") + `; median of ${rounds.length}`,
  );
  return [queueFigure, floorFigure, cpuFigure, ceilingFigure];
}

/** Runs the throughput benchmark for every worker count; a failing count does not stop the others. */
export function runThroughput(sizes: Sizes): Promise<BenchResult> {
  return withTempDir("throughput", async (dir) => {
    const inputs: Inputs = {
      dir,
      n: sizes.throughputJobs,
      rounds: sizes.throughputRounds,
      jobsFile: `${dir}/jobs.jsonl`,
      xargsFile: `${dir}/commands.txt`,
    };
    // JSON Lines of bare command strings: the leanest input `enqueue --file` takes.
    await Deno.writeTextFile(inputs.jobsFile, '"true"\n'.repeat(inputs.n));
    await Deno.writeTextFile(inputs.xargsFile, "true\n".repeat(inputs.n));

    const figures: Figure[] = [];
    const errors: string[] = [];
    const details: Record<string, unknown> = { jobs: inputs.n, rounds: inputs.rounds };
    for (const count of sizes.throughputCounts) {
      try {
        figures.push(...await measureCount(inputs, count, details));
      } catch (error) {
        errors.push(`--count ${count}: ${(error as Error).message}`);
      }
    }
    if (figures.length === 0) throw new Error(errors.join("; "));
    return { figures, details, problems: [], errors };
  });
}
