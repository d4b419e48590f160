/**
 * claim() against the ordering rule itself: over a seeded random history of
 * enqueues, pauses, claims with and without a queue selection, outcomes,
 * retries and deletions, every claim must take exactly the job that the
 * rule names when the waiting jobs are listed and sorted by hand.
 *
 * The history is drawn from a fixed seed; set QUEUECTL_FUZZ_SEED to draw
 * others. Assertion messages name the seed and the step.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { ClaimedJob, NewJob } from "../lib/job.ts";
import { CLAIMABLE_STATES } from "../lib/states.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { AttemptOutcome } from "../lib/store/store.ts";
import { SeededRandom } from "./seeded_random.ts";
import { withQueue } from "./helpers.ts";
import { T0 } from "./store_builders.ts";

const SEED = Number(Deno.env.get("QUEUECTL_FUZZ_SEED") ?? 20_261_122);
const QUEUES = ["default", "a", "b", "c"];
const STEPS = 1_500;

interface Waiting {
  id: string;
  queue: string;
  priority: number;
  run_at: number;
  seq: number;
}

/** The job the ordering rule names: served, unpaused, due; then priority, run_at, seq. */
function expectedNext(raw: DatabaseSync, now: number, served: string[] | undefined) {
  const paused = new Set(
    (raw.prepare("SELECT name FROM queues WHERE paused_at IS NOT NULL").all() as { name: string }[])
      .map((row) => row.name),
  );
  const states = CLAIMABLE_STATES.map((state) => `'${state}'`).join(", ");
  const waiting = raw.prepare(
    `SELECT id, queue, priority, run_at, seq FROM jobs WHERE state IN (${states})`,
  ).all() as unknown as Waiting[];
  return waiting
    .filter((job) => job.run_at <= now && !paused.has(job.queue))
    .filter((job) => served === undefined || served.includes(job.queue))
    .sort((x, y) => y.priority - x.priority || x.run_at - y.run_at || x.seq - y.seq)[0]?.id;
}

function outcome(random: SeededRandom, at: number): AttemptOutcome {
  const state = random.pick(["completed", "failed", "dead"] as const);
  return {
    state,
    retryAt: state === "failed" ? at + random.between(-3, 6) : undefined,
    exitCode: state === "completed" ? 0 : 1,
    error: state === "completed" ? null : "exited with code 1",
    finishedAt: at,
    output: {
      stdout: new Uint8Array(),
      stderr: new Uint8Array(),
      stdoutDropped: 0,
      stderrDropped: 0,
    },
  };
}

Deno.test(`claim() always takes the job the ordering rule names (seed ${SEED})`, () =>
  withQueue(async ({ db }) => {
    const random = new SeededRandom(SEED);
    const store = await openSqliteStore(db);
    const raw = new DatabaseSync(db);
    const held: ClaimedJob[] = [];
    let made = 0;
    let claims = 0;
    try {
      for (let step = 0; step < STEPS; step++) {
        const now = T0 + step;
        const where = `seed ${SEED}, step ${step}`;
        const roll = random.int(100);
        if (roll < 30) {
          const jobs: NewJob[] = Array.from({ length: random.between(1, 4) }, () => ({
            id: `j${made++}`,
            queue: random.pick(QUEUES),
            command: "true",
            maxRetries: random.int(2),
            // Many jobs scheduled later at high levels: the case a plain search walks through.
            priority: random.chance(0.3) ? random.between(5, 8) : random.between(-2, 3),
            runAt: now + random.between(-5, random.chance(0.3) ? 400 : 5),
            timeoutMs: null,
            cwd: "/",
            after: [],
          }));
          await store.enqueue(jobs, now);
        } else if (roll < 36) {
          const queue = random.pick(QUEUES);
          if (random.chance(0.5)) await store.pauseQueue(queue, now);
          else await store.resumeQueue(queue);
        } else if (roll < 46 && held.length > 0) {
          const job = held.splice(random.int(held.length), 1)[0];
          if (random.chance(0.2)) await store.releaseJob(job, now);
          else await store.finishAttempt(job, outcome(random, now));
        } else if (roll < 50 && made > 0) {
          const id = `j${random.int(made)}`;
          if (!held.some((job) => job.id === id)) {
            await store.deleteJobs({ ids: [id] }, now).catch(() => 0);
          }
        } else {
          const served = random.chance(0.3) ? QUEUES.filter(() => random.chance(0.5)) : undefined;
          const expected = expectedNext(raw, now, served);
          const job = await store.claim("w", now, served && { queues: served });
          assert.equal(job?.id, expected, where);
          if (job) {
            held.push(job);
            claims++;
          }
        }
      }
      assert.ok(claims > 200, `only ${claims} claims took a job (${`seed ${SEED}`})`);
    } finally {
      raw.close();
      await store.close();
    }
  }));
