/**
 * The crash soak: thousands of jobs run by `worker start` processes that are
 * SIGKILLed at random moments and restarted, until every job has ended;
 * then a final `worker start --drain`, and checks that nothing was lost.
 *
 * Kills are paced by progress (runs begun, read from the ledger) rather
 * than by the clock, so that the planned number of kills lands while jobs
 * still run, whatever the machine's speed.
 *
 * @module
 */

import type { JobJson } from "../lib/job.ts";
import { analyze, type Findings, killMark, type WorkerLog } from "./analysis.ts";
import { type JobKind, planJobs, seededRandom, toJsonLines } from "./plan.ts";
import { firstLines, killTagged, queuectlOk, WorkerProcess } from "./processes.ts";

/** Settings of one soak run. */
export interface SoakOptions {
  /** How many jobs to enqueue. */
  jobs: number;
  /** The least number of SIGKILLs of worker processes. */
  kills: number;
  /** Seeds the job mix, the kill points, the victims and the pool sizes. */
  seed: number;
  /** Share of jobs that exit 3 (with --max-retries 1) and must end dead. @default 0.1 */
  failFraction?: number;
  /** Share of jobs that work 1–2 s, so that kills find runs the rescuer must end. @default 0.02 */
  slowFraction?: number;
  /** The longest the killing phase may last before the soak gives up, in ms. @default 240_000 */
  timeoutMs?: number;
  /** Keep the run's directory (database, ledger, worker logs) even when it passes. */
  keep?: boolean;
  /**
   * A PostgreSQL URL to soak against instead of a SQLite file in the run's
   * directory; the run uses a schema of its own (`soak_<tag>`) unless the
   * URL names one with `?schema=`, and leaves it behind.
   */
  db?: string;
  /** Progress lines; silent when undefined. */
  log?: (line: string) => void;
  /** Aborts the run; its processes are still cleaned up. */
  signal?: AbortSignal;
}

/** What a soak run did and found. */
export interface SoakReport {
  seed: number;
  /** Marks this run's processes (in their environment) and starts its job ids. */
  tag: string;
  /** Where the database, ledger and worker logs are (removed unless kept). */
  dir: string;
  kept: boolean;
  jobs: { total: number; ok: number; fail: number; slow: number };
  /** SIGKILLs of worker processes. */
  kills: number;
  /** Kill moments; a blackout kills every live worker process at once. */
  killEvents: number;
  blackouts: number;
  /** `worker start` processes started, the final drain included. */
  workerStarts: number;
  findings: Findings;
  /** Invariants that failed: the run fails if there is any. */
  failures: string[];
  /** Things worth a look that do not fail the run. */
  notes: string[];
  /** Processes of the run still alive at the end, killed by the clean-up. */
  leftovers: number;
  wallMs: number;
  passed: boolean;
}

const POLL_MS = 25;
const STATUS_EVERY_MS = 250;
/** Retries of jobs meant to complete: a job would need 11 lost runs in a row to die. */
const OK_MAX_RETRIES = 10;

/** A kill moment: once this many runs have begun, kill one worker process, or all of them. */
interface KillEvent {
  afterBegins: number;
  blackout: boolean;
}

/**
 * Plans `count` kill moments between 5% and 90% of the first runs: every
 * job's last run writes a begin line, so all of them are reached before the
 * queue empties. About one in ten is a blackout (at least one when there
 * are three or more), so that recovery by the next `worker start` is
 * exercised as well as recovery by a surviving worker.
 */
function planKills(count: number, jobs: number, random: () => number): KillEvent[] {
  const points = Array.from({ length: count }, () => Math.ceil(jobs * (0.05 + 0.85 * random())));
  points.sort((a, b) => a - b);
  const events = points.map((afterBegins) => ({ afterBegins, blackout: false }));
  const blackouts = count >= 3 ? Math.max(1, Math.round(count / 10)) : 0;
  for (let placed = 0; placed < blackouts;) {
    const event = events[Math.floor(random() * count)];
    if (!event.blackout) {
      event.blackout = true;
      placed++;
    }
  }
  return events;
}

/** Counts the begin lines appended to the ledger since the last look. */
class LedgerProgress {
  begins = 0;
  #offset = 0;
  #carry = "";
  readonly #decoder = new TextDecoder();

  constructor(readonly path: string) {}

  async poll(): Promise<number> {
    const size = (await Deno.stat(this.path)).size;
    if (size <= this.#offset) return this.begins;
    const bytes = new Uint8Array(size - this.#offset);
    using file = await Deno.open(this.path);
    await file.seek(this.#offset, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < bytes.length) {
      const read = await file.read(bytes.subarray(filled));
      if (read === null) break;
      filled += read;
    }
    this.#offset += filled;
    const lines = (this.#carry + this.#decoder.decode(bytes.subarray(0, filled))).split("\n");
    this.#carry = lines.pop() ?? "";
    for (const line of lines) if (line.endsWith(" begin")) this.begins++;
    return this.begins;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds (true) or `timeoutMs` passes (false); throws once aborted. */
async function pollUntil(
  condition: () => boolean,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    signal?.throwIfAborted();
    if (Date.now() > deadline) return false;
    await delay(POLL_MS);
  }
  return true;
}

/** Runs one soak and checks it. Never leaves a process of the run behind. */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const began = performance.now();
  const log = options.log ?? (() => {});
  const signal = options.signal;
  const random = seededRandom(options.seed);
  // Job ids start with the tag, which is unique per run, so that the
  // clean-up can tell this run's job processes from any other queue's.
  const tag = `soak${options.seed.toString(36)}x${Date.now().toString(36)}`;
  const dir = await Deno.makeTempDir({ prefix: "queuectl-soak-" });
  const db = options.db === undefined
    ? `${dir}/queue.db`
    : /[?&]schema=/.test(options.db)
    ? options.db
    : `${options.db}${options.db.includes("?") ? "&" : "?"}schema=soak_${tag.toLowerCase()}`;
  const ledgerPath = `${dir}/ledger.txt`;
  await Deno.writeTextFile(ledgerPath, "");
  const cli = (args: string[], timeoutMs?: number) =>
    queuectlOk(db, args, { cwd: dir, tag, timeoutMs });

  const failures: string[] = [];
  const notes: string[] = [];
  const workers: WorkerProcess[] = [];
  const startWorker = (args: string[]) => {
    const worker = new WorkerProcess(db, args, { cwd: dir, tag, serial: workers.length + 1 });
    workers.push(worker);
    return worker;
  };
  let kills = 0;
  let killEvents = 0;
  let blackouts = 0;
  let leftovers = 0;
  let passed = false;
  let report: SoakReport | undefined;

  try {
    await cli(["config", "set", "backoff-base", "1"]);
    await cli(["config", "set", "lease-timeout", "5s"]);
    const plan = planJobs(
      {
        jobs: options.jobs,
        failFraction: options.failFraction ?? 0.1,
        slowFraction: options.slowFraction ?? 0.02,
        okMaxRetries: OK_MAX_RETRIES,
      },
      ledgerPath,
      tag,
      random,
    );
    await Deno.writeTextFile(`${dir}/jobs.jsonl`, toJsonLines(plan));
    const enqueued = (await cli(["enqueue", "--file", `${dir}/jobs.jsonl`])).trim().split("\n");
    if (enqueued.length !== plan.length) {
      throw new Error(`enqueue --file printed ${enqueued.length} ids for ${plan.length} jobs`);
    }
    log(`${plan.length} jobs enqueued in ${dir}; seed ${options.seed}`);

    // ------------------------------------------------ kill and restart workers
    const events = planKills(options.kills, plan.length, random);
    const progress = new LedgerProgress(ledgerPath);
    const poolSize = () => (random() < 0.5 ? 2 : 3);
    let target = poolSize();
    let restartAt = 0;
    let next = 0;
    let lastStatus = 0;
    const reportedExits = new Set<WorkerProcess>();
    const reportUnexpectedExits = () => {
      for (const worker of workers) {
        if (worker.running || worker.killedAt !== undefined || worker.stopped) continue;
        if (reportedExits.has(worker)) continue;
        reportedExits.add(worker);
        failures.push(
          `worker process ${worker.pid} exited by itself with code ${worker.exitCode}: ${
            firstLines(worker.stderr()) || "(no stderr)"
          }`,
        );
      }
    };
    const deadline = Date.now() + (options.timeoutMs ?? 240_000);
    for (let i = 0; i < target; i++) startWorker(["--count", "2"]);

    while (true) {
      signal?.throwIfAborted();
      const now = Date.now();
      const begins = await progress.poll();
      reportUnexpectedExits();
      const live = workers.filter((w) => w.running && w.killedAt === undefined);
      if (now > deadline) {
        failures.push(
          `the jobs had not all ended ${
            Math.round((options.timeoutMs ?? 240_000) / 1000)
          } s into the killing phase (${killEvents} of ${events.length} kill moments done)`,
        );
        break;
      }
      if (next < events.length && begins >= events[next].afterBegins && live.length > 0) {
        const event = events[next++];
        const victims = event.blackout ? live : [live[Math.floor(random() * live.length)]];
        for (const victim of victims) {
          if (!victim.signal("SIGKILL")) continue;
          victim.killedAt = Date.now();
          // Right after the kill: a run's end line written before this mark
          // finished before its worker died.
          await Deno.writeTextFile(ledgerPath, killMark(victim.pid), { append: true });
          kills++;
        }
        killEvents++;
        if (event.blackout) blackouts++;
        target = poolSize();
        restartAt = Date.now() + (event.blackout ? 200 + random() * 1300 : random() * 600);
        log(
          `kill ${killEvents}/${events.length} after ${begins} runs began: ${
            event.blackout ? "blackout, " : ""
          }pid ${victims.map((v) => v.pid).join(", ")}; back to ${target} processes in ${
            Math.max(0, Math.round(restartAt - Date.now()))
          } ms`,
        );
        continue;
      }
      if (live.length < target && now >= restartAt) {
        for (let i = live.length; i < target; i++) startWorker(["--count", "2"]);
      }
      if (next >= events.length && now - lastStatus >= STATUS_EVERY_MS) {
        lastStatus = now;
        const counts = JSON.parse(await cli(["status", "--json"])).jobs as Record<string, number>;
        if (counts.pending + counts.processing + counts.failed === 0) break;
      }
      await delay(POLL_MS);
    }
    log(`every job has ended after ${kills} kills; stopping the workers`);
    reportUnexpectedExits();

    // -------------------------------------------- stop the survivors in order
    const survivors = workers.filter((w) => w.running && w.killedAt === undefined);
    for (const worker of survivors) {
      // Before its start line it may not listen for SIGTERM yet, and would just die of it.
      if (!await pollUntil(() => worker.ready || !worker.running, 15_000, signal)) {
        failures.push(`worker process ${worker.pid} printed no start line within 15 s`);
      }
      worker.stopped = true;
      worker.signal("SIGTERM");
    }
    for (const worker of survivors) {
      if (!await pollUntil(() => !worker.running, 20_000, signal)) {
        failures.push(`worker process ${worker.pid} still ran 20 s after SIGTERM`);
        worker.signal("SIGKILL");
      } else if (worker.exitCode !== 0 && !reportedExits.has(worker)) {
        failures.push(
          `worker process ${worker.pid} exited with ${worker.exitCode} after SIGTERM: ${
            firstLines(worker.stderr()) || "(no stderr)"
          }`,
        );
      }
    }

    // ------------------------------------------------------------ final drain
    const drain = startWorker(["--count", "2", "--drain"]);
    if (!await pollUntil(() => !drain.running, 60_000, signal)) {
      failures.push("the final worker start --drain still ran after 60 s");
      drain.signal("SIGKILL");
      await drain.exited;
    } else if (drain.exitCode !== 0) {
      failures.push(
        `the final worker start --drain exited with ${drain.exitCode}: ${
          firstLines(drain.stderr()) || "(no stderr)"
        }`,
      );
    }
    // Output still in the pipes of killed processes arrives once they have exited.
    if (!await pollUntil(() => workers.every((w) => w.outputComplete), 10_000, signal)) {
      notes.push("some worker output was still open 10 s after every worker had exited");
    }

    // ------------------------------------------------------------------ check
    const jobs = JSON.parse(await cli(["list", "--json", "--limit", "0"])) as JobJson[];
    const status = JSON.parse(await cli(["status", "--json"])) as {
      jobs: Record<string, number>;
      workers: unknown[];
    };
    const logs: WorkerLog[] = workers.map((w) => ({
      pid: w.pid,
      stdout: w.stdout(),
      stderr: w.stderr(),
      killed: w.killedAt !== undefined,
    }));
    await Promise.all(
      workers.map((w, i) =>
        Deno.writeTextFile(`${dir}/worker-${i + 1}-${w.pid}.log`, w.stdout() + w.stderr())
      ),
    );
    const kinds = new Map<string, JobKind>(plan.map((job) => [job.id, job.kind]));
    const findings = analyze({
      plan: kinds,
      jobs,
      ledgerText: await Deno.readTextFile(ledgerPath),
      logs,
    });

    if (kills < options.kills) failures.push(`only ${kills} of ${options.kills} kills happened`);
    for (
      const [what, list] of [
        ["lost", findings.lost],
        ["wrong outcome", findings.wrongOutcome],
        ["overlapping runs", findings.overlaps],
        ["attempt begun twice", findings.doubleRuns],
        ["malformed ledger line", findings.malformed],
      ] as const
    ) {
      if (list.length > 0) failures.push(`${list.length} ${what}: ${list.slice(0, 5).join("; ")}`);
    }
    for (const state of ["pending", "processing", "completed", "failed", "dead"]) {
      const listed = findings.states[state] ?? 0;
      if ((status.jobs[state] ?? 0) !== listed) {
        failures.push(`status counts ${status.jobs[state]} ${state}, list shows ${listed}`);
      }
    }
    if (jobs.length !== plan.length) {
      failures.push(`list shows ${jobs.length} jobs, ${plan.length} were enqueued`);
    }
    if (status.workers.length > 0) {
      failures.push(`status still lists ${status.workers.length} workers after all have exited`);
    }
    if (findings.duplicateRuns.unexplained > 0) {
      notes.push(`unexplained extra runs: ${findings.unexplained.slice(0, 5).join("; ")}`);
    }
    if (findings.okRunFailures.length > 0) {
      notes.push(
        `${findings.okRunFailures.length} runs of jobs meant to complete failed: ${
          findings.okRunFailures.slice(0, 3).join("; ")
        }`,
      );
    }
    if (findings.workerErrors.length > 0) {
      notes.push(
        `${findings.workerErrors.length} error lines from workers: ${
          findings.workerErrors.slice(0, 3).join("; ")
        }`,
      );
    }

    passed = failures.length === 0;
    report = {
      seed: options.seed,
      tag,
      dir,
      kept: false,
      jobs: {
        total: plan.length,
        ok: plan.filter((job) => job.kind === "ok").length,
        fail: plan.filter((job) => job.kind === "fail").length,
        slow: plan.filter((job) => job.sleepSeconds >= 1).length,
      },
      kills,
      killEvents,
      blackouts,
      workerStarts: workers.length,
      findings,
      failures,
      notes,
      leftovers: 0,
      wallMs: 0,
      passed,
    };
  } finally {
    for (const worker of workers) worker.signal("SIGKILL");
    await Promise.race([Promise.all(workers.map((w) => w.exited)), delay(5_000)]);
    const found = await killTagged(tag);
    leftovers = found.length;
    if (!passed || options.keep) {
      log(`kept ${dir}`);
    } else {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  if (leftovers > 0) {
    report.notes.push(`${leftovers} processes of the run were still alive at the end and killed`);
  }
  return {
    ...report,
    kept: !passed || options.keep === true,
    leftovers,
    wallMs: performance.now() - began,
  };
}

/** The report as a Markdown table, with the failures and notes below it. */
export function renderSummary(report: SoakReport): string {
  const f = report.findings;
  const d = f.duplicateRuns;
  const states = Object.entries(f.states).map(([state, n]) => `${state} ${n}`).join(", ");
  const rows: [string, string][] = [
    [
      "jobs",
      `${report.jobs.total} (${report.jobs.ok} to complete, of which ${report.jobs.slow} slow; ${report.jobs.fail} to fail)`,
    ],
    ["final states", states || "none"],
    [
      "kills",
      `${report.kills} SIGKILLs at ${report.killEvents} moments (${report.blackouts} blackouts); ${report.workerStarts} worker starts`,
    ],
    [
      "recoveries",
      `${f.recoveredLines} "recovered" lines; ${f.rerunJobs} jobs ran more than once (${f.extraRuns} extra runs); ${f.deadByLostWorker} dead jobs last lost with their worker`,
    ],
    [
      "duplicates",
      `${f.duplicateJobs} jobs: extra successful runs ${
        d["before-kill"]
      } finished before their worker's kill, ${d["after-kill"]} finished after it (orphaned run), ${
        d["stale-worker"]
      } by a worker taken for dead, ${d.unexplained} unexplained`,
    ],
    ["overlapping runs", String(f.overlaps.length)],
    ["lost", String(f.lost.length)],
    ["wrong outcome", String(f.wrongOutcome.length)],
    ["leftover processes", String(report.leftovers)],
    ["wall time", `${(report.wallMs / 1000).toFixed(1)} s`],
    ["seed", String(report.seed)],
    ["result", report.passed ? "PASS" : `FAIL (${report.failures.length} invariants)`],
  ];
  const lines = ["| figure | value |", "| --- | --- |"];
  for (const [name, value] of rows) lines.push(`| ${name} | ${value.replaceAll("|", "\\|")} |`);
  for (const failure of report.failures) lines.push(`- FAIL: ${failure}`);
  for (const note of report.notes) lines.push(`- note: ${note}`);
  if (report.kept) lines.push(`- files kept in ${report.dir}`);
  return lines.join("\n") + "\n";
}
