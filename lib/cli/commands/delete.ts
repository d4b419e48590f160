/**
 * `queuectl delete`: removes jobs that are not running, with their history.
 * On a terminal it asks first, since nothing brings the jobs back.
 *
 * @module
 */

import { parseDuration } from "../../duration.ts";
import { JobNotFoundError, QueueError, UsageError } from "../../errors.ts";
import { DELETABLE_STATES } from "../../states.ts";
import type { DeleteTarget, Store } from "../../store/store.ts";
import { parseStateList } from "../args.ts";
import type { CommandContext } from "../context.ts";
import { writeOut } from "../output.ts";

/** How many jobs `target` names, after checking that every named id can be deleted. */
async function countTargets(store: Store, target: DeleteTarget): Promise<number> {
  if ("ids" in target) {
    for (const id of target.ids) {
      const job = await store.getJob(id);
      if (job === undefined) throw new JobNotFoundError(id);
      if (job.state === "processing") {
        throw new QueueError(`job '${id}' is running; kill it first ('queuectl kill ${id}')`);
      }
    }
    return target.ids.length;
  }
  return await store.countJobs(target.states, target.changedBefore);
}

/** Reads one line from stdin, without its newline; null at end of input. */
async function readLine(): Promise<string | null> {
  const bytes: number[] = [];
  const buffer = new Uint8Array(256);
  while (true) {
    const n = await Deno.stdin.read(buffer);
    if (n === null && bytes.length === 0) return null;
    if (n === null) break;
    const newline = buffer.subarray(0, n).indexOf(0x0a);
    bytes.push(...buffer.subarray(0, newline === -1 ? n : newline));
    if (newline !== -1) break;
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Asks on the terminal; true only for an explicit y or yes. */
async function confirm(question: string): Promise<boolean> {
  writeOut(`${question} [y/N] `);
  const answer = await readLine();
  if (answer === null) writeOut("\n");
  return answer !== null && /^(y|yes)$/i.test(answer.trim());
}

/** Runs `delete`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const ids = [...new Set(args.positionals)];
  const stateOption = args.options.state as string | undefined;
  const olderThan = args.options["older-than"] as string | undefined;
  if (ids.length > 0 && stateOption !== undefined) {
    throw new UsageError("give job ids or --state, not both");
  }
  if (ids.length === 0 && stateOption === undefined) {
    throw new UsageError("missing job ids or --state S: say which jobs to delete");
  }
  if (olderThan !== undefined && stateOption === undefined) {
    throw new UsageError("--older-than only goes with --state");
  }
  const states = stateOption === undefined
    ? undefined
    : parseStateList(stateOption, DELETABLE_STATES, "delete");
  const olderThanMs = olderThan === undefined
    ? undefined
    : parseDuration(olderThan, "--older-than");
  const ask = args.options.yes !== true && Deno.stdin.isTerminal() && Deno.stdout.isTerminal();
  const store = await openStore();
  try {
    const now = store.now();
    const target: DeleteTarget = states === undefined ? { ids } : {
      states,
      changedBefore: olderThanMs === undefined ? undefined : now - olderThanMs,
    };
    if (ask) {
      const count = await countTargets(store, target);
      if (count > 0 && !await confirm(`Delete ${count} job${count === 1 ? "" : "s"}?`)) {
        throw new QueueError("not confirmed: nothing deleted");
      }
    }
    const deleted = await store.deleteJobs(target, now);
    writeOut(`deleted ${deleted} job${deleted === 1 ? "" : "s"}\n`);
    return 0;
  } finally {
    await store.close();
  }
}
