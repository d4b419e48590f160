/**
 * `queuectl enqueue`: adds one job, or every job of a file in one transaction.
 *
 * @module
 */

import { DEFAULT_CONFIG } from "../../config.ts";
import { parseDuration } from "../../duration.ts";
import { DuplicateJobError, QueueError, UsageError } from "../../errors.ts";
import { parseEnvAssignment, parseEnvFile } from "../../job_env.ts";
import { parseCount } from "../../numbers.ts";
import {
  checkJobId,
  checkQueueName,
  checkUniqueKey,
  parseIdList,
  parseIsoTime,
  parseSpecArgument,
  parseSpecFile,
  resolveSpecList,
  type SpecList,
  type SpecOverrides,
} from "../../spec.ts";
import { decodeStrictUtf8, invalidUtf8Message, invalidUtf8Offset } from "../../utf8.ts";
import type { Job, NewJob } from "../../job.ts";
import type { Store, UniqueKeyHeld } from "../../store/store.ts";
import type { CommandContext } from "../context.ts";
import { writeErr, writeOut } from "../write.ts";
import { moduleUrl } from "../../module_urls.ts";

/** The enqueue options (shared with `schedule add`) as spec overrides. */
export function overridesFrom(
  options: Record<string, string | boolean | undefined>,
  lists: Record<string, string[]>,
): SpecOverrides {
  const text = (name: string) => options[name] as string | undefined;
  const overrides: SpecOverrides = {};
  if (text("id") !== undefined) overrides.id = checkJobId(text("id"), "--id");
  if (text("max-retries") !== undefined) {
    overrides.maxRetries = parseCount(text("max-retries")!, "--max-retries");
  }
  if (text("priority") !== undefined) {
    overrides.priority = parseCount(text("priority")!, "--priority");
  }
  if (text("delay") !== undefined && text("run-at") !== undefined) {
    throw new UsageError("give either --delay or --run-at, not both");
  }
  if (text("delay") !== undefined) overrides.delayMs = parseDuration(text("delay")!, "--delay");
  if (text("run-at") !== undefined) overrides.runAt = parseIsoTime(text("run-at")!, "--run-at");
  if (text("timeout") !== undefined) {
    overrides.timeoutMs = parseDuration(text("timeout")!, "--timeout");
    if (overrides.timeoutMs === 0) throw new UsageError("--timeout: must be longer than 0");
  }
  if (text("cwd") !== undefined) overrides.cwd = text("cwd");
  if (text("queue") !== undefined) overrides.queue = checkQueueName(text("queue"), "--queue");
  if (text("after") !== undefined) overrides.after = parseIdList(text("after"), "--after");
  const env = envFrom(lists["env-file"] ?? [], lists.env ?? []);
  if (env !== undefined) overrides.env = env;
  if (text("unique-key") !== undefined) {
    overrides.uniqueKey = checkUniqueKey(text("unique-key"), "--unique-key");
  }
  if (text("unique-for") !== undefined) {
    // Without --unique-key, the spec's unique_key must give one (lib/spec.ts says so).
    overrides.uniqueForMs = parseDuration(text("unique-for")!, "--unique-for");
  }
  return overrides;
}

/**
 * The variables of `--env-file`s (in order, a later file winning) and then
 * of `--env`s (winning over the files); undefined when none is given.
 */
function envFrom(files: string[], assignments: string[]): Record<string, string> | undefined {
  if (files.length === 0 && assignments.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const file of files) {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(file);
    } catch (error) {
      throw new UsageError(`--env-file: cannot read '${file}': ${(error as Error).message}`);
    }
    const text = decodeStrictUtf8(bytes);
    if (text === undefined) throw new UsageError(`--env-file ${file}: not UTF-8 text`);
    Object.assign(env, parseEnvFile(text, `--env-file ${file}`));
  }
  for (const assignment of assignments) {
    const [name, value] = parseEnvAssignment(assignment);
    env[name] = value;
  }
  return env;
}

async function readSpecs(file: string): Promise<SpecList> {
  let bytes: Uint8Array;
  try {
    bytes = file === "-"
      ? new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer())
      : await Deno.readFile(file);
  } catch (error) {
    throw new UsageError(`--file: cannot read '${file}': ${(error as Error).message}`);
  }
  return parseSpecFile(decodeJobFile(bytes));
}

/** The text of a job file; a leading byte order mark is dropped. */
function decodeJobFile(bytes: Uint8Array): string {
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  const text = decodeStrictUtf8(bytes.subarray(bom));
  if (text !== undefined) return text;
  const offset = invalidUtf8Offset(bytes);
  const start = bytes.lastIndexOf(0x0a, offset) + 1;
  const end = bytes.indexOf(0x0a, offset);
  let line = 1;
  for (let i = 0; i < start; i++) if (bytes[i] === 0x0a) line++;
  const lineBytes = bytes.subarray(start, end === -1 ? bytes.length : end);
  throw new UsageError(invalidUtf8Message(`job file line ${line}`, lineBytes, offset - start));
}

/**
 * `enqueue --wait`: prints the job's output as it runs and returns its exit
 * code: 0 when it completed; when it is dead, its last run's exit code if
 * that was not 0, else 1; 130 when Ctrl+C ends the wait (the job goes on).
 */
async function waitForJob(store: Store, id: string, added: boolean): Promise<number> {
  // Loaded only here, by a URL built at run time (lib/module_urls.ts), so that a plain enqueue
  // does not load it at start-up.
  const { followJob, interruptOnSignals }: typeof import("../follow.ts") = await import(
    moduleUrl("lib/cli/follow")
  );
  // Listening before the id is announced: whoever reads it may signal at once.
  const interrupt = interruptOnSignals();
  let job: Job | undefined;
  try {
    // stdout carries the job's own output from here on.
    if (added) writeErr(`queuectl: enqueued ${id}\n`);
    await store.notifier.announce("jobs");
    job = await followJob(store, id, { signal: interrupt.signal });
  } finally {
    interrupt.dispose();
  }
  if (!job) {
    writeErr(`queuectl: stopped waiting; job '${id}' goes on\n`);
    return interrupt.exitCode();
  }
  if (job.state === "completed") return 0;
  writeErr(`queuectl: job '${id}' is dead: ${job.lastError ?? "no reason recorded"}\n`);
  return job.exitCode !== null && job.exitCode > 0 && job.exitCode < 256 ? job.exitCode : 1;
}

/**
 * Stores the jobs; a taken id in a file or array is named with its place
 * there (`job file line 7: a job with id 'report' already exists`), as every
 * other error about one of its jobs is.
 */
export async function enqueueNaming(
  store: Store,
  jobs: NewJob[],
  now: number,
  specs: SpecList,
): Promise<UniqueKeyHeld[]> {
  try {
    return await store.enqueue(jobs, now);
  } catch (error) {
    if (!(error instanceof DuplicateJobError) || specs.label === "") throw error;
    const index = jobs.findIndex((job) => job.id === error.id);
    if (index === -1) throw error;
    throw new QueueError(`${specs.label} ${specs.position(index)}: ${error.message}`);
  }
}

/**
 * The one line on stderr about jobs not added because their unique key was
 * held: the job and its holder for one job, a count for several.
 */
function heldMessage(jobs: NewJob[], held: UniqueKeyHeld[], specs: SpecList): string {
  if (held.length === 1) {
    const { index, holder, holderState } = held[0];
    const job = jobs[index];
    const place = specs.label === "" ? "" : `${specs.label} ${specs.position(index)}: `;
    return `queuectl: ${place}not added: job '${holder}' (${holderState}) holds unique key ` +
      `${JSON.stringify(job.uniqueKey)} in queue '${job.queue}'; its id is printed instead\n`;
  }
  return `queuectl: ${held.length} of ${jobs.length} jobs not added: their unique keys are ` +
    `held; the holders' ids are printed in their places\n`;
}

/** Runs `enqueue`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const file = args.options.file as string | undefined;
  const positionals = args.positionals;
  if (file !== undefined && positionals.length > 0) {
    throw new UsageError("give a job spec or --file, not both");
  }
  if (file === undefined && positionals.length === 0) {
    throw new UsageError("missing job spec: give a JSON object or a shell command");
  }
  const wait = args.options.wait === true;
  if (wait && file !== undefined) throw new UsageError("--wait takes one job, not --file");
  const overrides = overridesFrom(args.options, args.lists ?? {});
  const specs = file !== undefined ? await readSpecs(file) : parseSpecArgument(positionals[0]);
  if (wait && specs.specs.length > 1) {
    throw new UsageError(
      `--wait takes one job, but the ${specs.label} holds ${specs.specs.length}`,
    );
  }
  const cwd = Deno.cwd();
  // Resolve every spec once before the database is opened (and perhaps
  // created), so that invalid input leaves no trace; then again against the
  // queue's own defaults and the moment of the commit.
  resolveSpecList(specs, overrides, { now: Date.now(), cwd, config: DEFAULT_CONFIG });

  const store = await openStore();
  try {
    const config = await store.getConfig();
    const now = store.now();
    const jobs = resolveSpecList(specs, overrides, { now, cwd, config });
    const held = await enqueueNaming(store, jobs, now, specs);
    // A job not added answers with the id of the job holding its key, in its place.
    const ids = jobs.map((job) => job.id);
    for (const { index, holder } of held) ids[index] = holder;
    if (held.length > 0) writeErr(heldMessage(jobs, held, specs));
    if (wait) return await waitForJob(store, ids[0], held.length === 0);
    writeOut(ids.join("\n") + "\n");
    if (held.length < jobs.length) await store.notifier.announce("jobs");
    return 0;
  } finally {
    // Closed even on the way out: closing the last connection folds the WAL back
    // into the file. Left open, the next process to open the database would have
    // to rebuild the WAL's index from the whole WAL, which costs it more.
    await store.close();
  }
}
