/**
 * The soak's jobs: which complete and which are meant to fail, how long each
 * works, and the shell command that leaves its trace in the ledger.
 *
 * @module
 */

export { seededRandom } from "../tests/seeded_random.ts";

/** What a job is meant to do: complete (`ok`) or end in the DLQ (`fail`). */
export type JobKind = "ok" | "fail";

/** One planned job. */
export interface PlannedJob {
  id: string;
  kind: JobKind;
  /** How long the command sleeps, in seconds. */
  sleepSeconds: number;
  command: string;
  maxRetries: number;
}

/** The knobs of a plan. */
export interface PlanOptions {
  jobs: number;
  /** Share of jobs that exit 3 and must end `dead`. */
  failFraction: number;
  /** Share of jobs that work 1–2 s instead of 10–90 ms. */
  slowFraction: number;
  /** Retries of jobs meant to complete: enough that kills cannot exhaust them. */
  okMaxRetries: number;
}

/** Quotes a string for `sh`, whatever it holds. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command of one job. It appends "ID ATTEMPT begin" to the ledger, works,
 * then appends "ID ATTEMPT end" just before it exits (0, or 3 for a `fail`
 * job). `>>` opens with O_APPEND and `echo` writes its short line in one
 * write(2), so lines from concurrent runs never interleave, and the file's
 * order is the order in which runs reached those points. The end line is
 * the proof that a run did its work; begin lines let the soak see overlaps
 * and measure progress.
 */
export function jobCommand(ledger: string, kind: JobKind, sleepSeconds: number): string {
  const line = (phase: string) =>
    `echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT ${phase}" >> ${shellQuote(ledger)}`;
  const work = `sleep ${sleepSeconds.toFixed(3)}`;
  return [line("begin"), work, line("end"), ...(kind === "fail" ? ["exit 3"] : [])].join("; ");
}

/**
 * Plans `options.jobs` jobs with ids `<tag>-<kind>-<n>`: the kind in the id
 * keeps the ledger and worker logs readable, and the tag ties every process
 * of this run to it.
 */
export function planJobs(
  options: PlanOptions,
  ledger: string,
  tag: string,
  random: () => number,
): PlannedJob[] {
  const width = String(options.jobs).length;
  const jobs: PlannedJob[] = [];
  for (let n = 1; n <= options.jobs; n++) {
    const kind: JobKind = random() < options.failFraction ? "fail" : "ok";
    // Slow jobs are still running when the rescuer comes (within 2 s of a
    // kill), so they exercise its killing of a lost run before the retry.
    const slow = kind === "ok" && random() < options.slowFraction;
    const sleepSeconds = slow ? 1 + random() : 0.01 + Math.floor(random() * 9) / 100;
    jobs.push({
      id: `${tag}-${kind}-${String(n).padStart(width, "0")}`,
      kind,
      sleepSeconds,
      command: jobCommand(ledger, kind, sleepSeconds),
      // A fail job runs twice (exit 3, retry, exit 3) and is dead.
      maxRetries: kind === "fail" ? 1 : options.okMaxRetries,
    });
  }
  return jobs;
}

/** The plan as JSON Lines for `enqueue --file`. */
export function toJsonLines(jobs: PlannedJob[]): string {
  return jobs.map((job) =>
    JSON.stringify({ id: job.id, command: job.command, max_retries: job.maxRetries }) + "\n"
  ).join("");
}
