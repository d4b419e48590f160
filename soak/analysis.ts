/**
 * What a soak run left behind, checked against what it planned: the final
 * job list, the ledger the jobs appended to, and the worker processes'
 * output. Pure functions, so that the checks can be read (and tested)
 * without running anything.
 *
 * @module
 */

import type { JobJson } from "../lib/job.ts";
import type { JobKind } from "./plan.ts";

/** One line a job's run appended to the ledger. */
export interface LedgerRun {
  /** Position in the ledger: the order in which runs reached that point. */
  index: number;
  id: string;
  attempt: number;
  phase: "begin" | "end";
}

/** The parsed ledger. */
export interface Ledger {
  runs: LedgerRun[];
  /** For each worker pid the soak SIGKILLed, the position of its kill mark. */
  kills: Map<number, number>;
  /** Lines that fit no format: torn or interleaved writes. */
  malformed: string[];
}

/** The line the soak appends right after it SIGKILLs worker process `pid`. */
export function killMark(pid: number): string {
  return `# kill ${pid}\n`;
}

/** Parses the ledger: run lines (`ID ATTEMPT begin|end`) and the soak's kill marks. */
export function parseLedger(text: string): Ledger {
  const ledger: Ledger = { runs: [], kills: new Map(), malformed: [] };
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, index) => {
    const kill = /^# kill (\d+)$/.exec(line);
    if (kill) {
      ledger.kills.set(Number(kill[1]), index);
      return;
    }
    const run = /^(\S+) (\d+) (begin|end)$/.exec(line);
    if (run) {
      ledger.runs.push({
        index,
        id: run[1],
        attempt: Number(run[2]),
        phase: run[3] as "begin" | "end",
      });
    } else {
      ledger.malformed.push(line);
    }
  });
  return ledger;
}

/** The output of one `worker start` process, and whether the soak killed it. */
export interface WorkerLog {
  pid: number;
  stdout: string;
  stderr: string;
  killed: boolean;
}

/** What the worker processes' output tells about runs. */
export interface LogFacts {
  /** `id#attempt` → pid of the worker process that started that run. */
  runOwner: Map<string, number>;
  /** Runs whose worker finished them but found the job no longer its own (lease lost). */
  discarded: Set<string>;
  /** Ids in "recovered" lines, one entry per line. */
  recovered: string[];
  /** Runs of `ok` jobs that the worker saw fail (they should only ever be lost, never fail). */
  okRunFailures: string[];
  /** Error lines: `queuectl:` on stderr, and "cannot claim/record" on stdout. */
  errors: string[];
}

const runKey = (id: string, attempt: number) => `${id}#${attempt}`;

/** The pid inside a worker process id (`host-PID-startbase36`). */
function pidOfProcessId(processId: string): number | undefined {
  const match = /-(\d+)-[0-9a-z]+$/.exec(processId);
  return match ? Number(match[1]) : undefined;
}

/** Reads the event lines of every worker process. */
export function parseWorkerLogs(logs: WorkerLog[], kindOf: (id: string) => JobKind | undefined) {
  const facts: LogFacts = {
    runOwner: new Map(),
    discarded: new Set(),
    recovered: [],
    okRunFailures: [],
    errors: [],
  };
  for (const log of logs) {
    // A thread runs one job at a time: an outcome line belongs to the
    // latest run its thread started (outcome lines carry no attempt).
    const current = new Map<string, { id: string; attempt: number }>();
    for (const line of log.stdout.split("\n")) {
      const recovered = /^\S+ (\S+) recovered\b/.exec(line);
      if (recovered) {
        facts.recovered.push(recovered[1]);
        continue;
      }
      // "[w/1] cannot claim a job: …" and "[w/1] ID cannot record its outcome: …"
      if (/\] (?:\S+ )?cannot (?:claim|record)\b/.test(line)) {
        facts.errors.push(`pid ${log.pid}: ${line}`);
        continue;
      }
      const event = /^\S+ \[([^\]]+)\/(\d+)\] (\S+) (.*)$/.exec(line);
      if (!event) continue;
      const [, processId, thread, id, rest] = event;
      const pid = pidOfProcessId(processId) ?? log.pid;
      const started = /^started \(attempt (\d+) of/.exec(rest);
      if (started) {
        const attempt = Number(started[1]);
        facts.runOwner.set(runKey(id, attempt), pid);
        current.set(`${processId}/${thread}`, { id, attempt });
        continue;
      }
      const run = current.get(`${processId}/${thread}`);
      const attempt = run?.id === id ? run.attempt : undefined;
      if (/no longer this worker's/.test(rest) && attempt !== undefined) {
        facts.discarded.add(runKey(id, attempt));
      } else if (/^failed in /.test(rest) && kindOf(id) === "ok") {
        facts.okRunFailures.push(`${id} (attempt ${attempt ?? "?"}): ${rest}`);
      }
    }
    for (const line of log.stderr.split("\n")) {
      if (line.startsWith("queuectl:")) facts.errors.push(`pid ${log.pid}: ${line}`);
    }
  }
  return facts;
}

/** Why an extra successful run of a job happened. */
export type DuplicateCause =
  /** Its command had finished, but its worker was killed before recording it. */
  | "before-kill"
  /**
   * Its worker was killed while it ran; the orphaned run went on and finished,
   * yet it ran again. Recovery settles such a run from the exit status it
   * left, so these point at a run killed just before it could leave one, or
   * at a status that recovery lost.
   */
  | "after-kill"
  /** Its worker was alive but had been taken for dead (lease expired) and its outcome was discarded. */
  | "stale-worker"
  /** None of the above: a bug. */
  | "unexplained";

/** Everything the checks found. */
export interface Findings {
  /** Final states, from `list --json`. */
  states: Record<string, number>;
  /** Jobs not in a final state, missing, or completed without their run's end line. */
  lost: string[];
  /** `ok` jobs that ended dead and `fail` jobs that completed. */
  wrongOutcome: string[];
  /** `ok` jobs whose successful run appears more than once in the ledger. */
  duplicateJobs: number;
  /** Extra successful runs by cause. */
  duplicateRuns: Record<DuplicateCause, number>;
  /** Descriptions of the unexplained extra runs. */
  unexplained: string[];
  /** A run that ended after a later attempt of its job had begun. */
  overlaps: string[];
  /** An attempt number that began twice. */
  doubleRuns: string[];
  /** Lines of the ledger that fit no format. */
  malformed: string[];
  /** "recovered" lines in the workers' output. */
  recoveredLines: number;
  /** `ok` jobs that needed more than one run. */
  rerunJobs: number;
  /** Runs beyond the first, summed over `ok` jobs. */
  extraRuns: number;
  /** Dead jobs whose last error says their worker was lost. */
  deadByLostWorker: number;
  /** Runs of `ok` jobs that failed (rather than being lost). */
  okRunFailures: string[];
  /** Error lines printed by workers. */
  workerErrors: string[];
}

/** What {@linkcode analyze} reads. */
export interface AnalysisInput {
  /** Planned kind of every job, by id. */
  plan: Map<string, JobKind>;
  /** The final job list (`list --json --limit 0`). */
  jobs: JobJson[];
  ledgerText: string;
  logs: WorkerLog[];
}

/** Checks a finished soak run. */
export function analyze(input: AnalysisInput): Findings {
  const ledger = parseLedger(input.ledgerText);
  const facts = parseWorkerLogs(input.logs, (id) => input.plan.get(id));
  const killedPids = new Set(input.logs.filter((log) => log.killed).map((log) => log.pid));
  const byId = new Map(input.jobs.map((job) => [job.id, job]));
  const runsById = new Map<string, LedgerRun[]>();
  for (const run of ledger.runs) {
    const list = runsById.get(run.id) ?? [];
    list.push(run);
    runsById.set(run.id, list);
  }

  const findings: Findings = {
    states: {},
    lost: [],
    wrongOutcome: [],
    duplicateJobs: 0,
    duplicateRuns: { "before-kill": 0, "after-kill": 0, "stale-worker": 0, unexplained: 0 },
    unexplained: [],
    overlaps: [],
    doubleRuns: [],
    malformed: ledger.malformed,
    recoveredLines: facts.recovered.length,
    rerunJobs: 0,
    extraRuns: 0,
    deadByLostWorker: 0,
    okRunFailures: facts.okRunFailures,
    workerErrors: facts.errors,
  };
  for (const job of input.jobs) findings.states[job.state] = (findings.states[job.state] ?? 0) + 1;
  for (const id of byId.keys()) {
    if (!input.plan.has(id)) findings.wrongOutcome.push(`${id}: a job the soak never enqueued`);
  }

  for (const [id, kind] of input.plan) {
    const job = byId.get(id);
    const runs = runsById.get(id) ?? [];
    checkRunOrder(id, runs, findings);
    if (!job) {
      findings.lost.push(`${id}: missing from the job list`);
      continue;
    }
    if (job.state !== "completed" && job.state !== "dead") {
      findings.lost.push(`${id}: left ${job.state} (attempts ${job.attempts})`);
      continue;
    }
    if (job.state === "dead" && /worker lost/.test(job.last_error ?? "")) {
      findings.deadByLostWorker++;
    }
    if (kind === "fail") {
      if (job.state !== "dead") findings.wrongOutcome.push(`${id}: meant to fail, but completed`);
      continue;
    }
    if (job.state !== "completed") {
      findings.wrongOutcome.push(
        `${id}: meant to complete, but dead after ${job.attempts} attempts (${job.last_error})`,
      );
      continue;
    }
    if (job.attempts > 1) {
      findings.rerunJobs++;
      findings.extraRuns += job.attempts - 1;
    }
    const ends = runs.filter((run) => run.phase === "end");
    if (!ends.some((run) => run.attempt === job.attempts)) {
      findings.lost.push(
        `${id}: completed at attempt ${job.attempts}, but that run left no end line (ledger: ${
          ends.map((run) => run.attempt).join(", ") || "none"
        })`,
      );
    }
    if (ends.length < 2) continue;
    findings.duplicateJobs++;
    let recordedSeen = false;
    for (const end of ends) {
      if (end.attempt === job.attempts && !recordedSeen) {
        recordedSeen = true; // The run whose success was recorded.
        continue;
      }
      const cause = duplicateCause(end, job.attempts, facts, ledger, killedPids);
      findings.duplicateRuns[cause]++;
      if (cause === "unexplained") {
        const owner = facts.runOwner.get(runKey(id, end.attempt));
        findings.unexplained.push(
          `${id}: attempt ${end.attempt} finished, and attempt ${job.attempts} was recorded ` +
            `(run started by ${owner === undefined ? "an unknown process" : `pid ${owner}`})`,
        );
      }
    }
  }
  return findings;
}

/** Finds runs that overlapped a later attempt, and attempts that began twice. */
function checkRunOrder(id: string, runs: LedgerRun[], findings: Findings): void {
  const begun = new Set<number>();
  let latest = 0;
  for (const run of runs) {
    if (run.phase === "begin") {
      if (begun.has(run.attempt)) findings.doubleRuns.push(`${id}: attempt ${run.attempt}`);
      begun.add(run.attempt);
      latest = Math.max(latest, run.attempt);
    } else if (run.attempt < latest) {
      findings.overlaps.push(
        `${id}: attempt ${run.attempt} ended after attempt ${latest} had begun`,
      );
    }
  }
}

function duplicateCause(
  end: LedgerRun,
  recordedAttempt: number,
  facts: LogFacts,
  ledger: Ledger,
  killedPids: Set<number>,
): DuplicateCause {
  // The recorded attempt ending twice is a double run, whatever happened to workers.
  if (end.attempt === recordedAttempt) return "unexplained";
  const key = runKey(end.id, end.attempt);
  const owner = facts.runOwner.get(key);
  if (owner !== undefined && killedPids.has(owner)) {
    const killedAt = ledger.kills.get(owner);
    return killedAt !== undefined && end.index < killedAt ? "before-kill" : "after-kill";
  }
  if (facts.discarded.has(key)) return "stale-worker";
  return "unexplained";
}
