/**
 * The store conformance suite, part four (see tests/store_conformance.ts): a
 * seeded random history of enqueues, pauses, claims, outcomes, kills,
 * releases, late outcomes, deletions, re-runs and purges, replayed on the
 * store and on the in-memory model of tests/store_model.ts. After every step
 * everything the store reports through its interface (each job's state,
 * attempts and run_at, the counts, the queues, what is due next, the kill
 * requests) must be what the model holds, and every claim must take the job
 * the model names.
 *
 * The history is drawn from a fixed seed; set QUEUECTL_FUZZ_SEED to draw
 * others. Assertion messages name the seed and the step.
 *
 * @module
 */

import assert from "node:assert/strict";
import { QueueError } from "../lib/errors.ts";
import type { ClaimedJob, NewJob } from "../lib/job.ts";
import type { JobState } from "../lib/states.ts";
import type { Store } from "../lib/store/store.ts";
import { SeededRandom } from "./seeded_random.ts";
import { newJob, outcome, T0 } from "./store_builders.ts";
import type { ConformanceTest } from "./store_conformance.ts";
import { ModelRefusal, QueueModel } from "./store_model.ts";

const SEED = Number(Deno.env.get("QUEUECTL_FUZZ_SEED") ?? 20_261_123);
const STEPS = 1_200;
const QUEUES = ["default", "a", "b", "c"];
const WORKERS = ["w1", "w2"];

/** Every rule the history must have exercised at least once, or it proves little. */
const EXERCISED = [
  "claimed",
  "nothing to claim",
  "paused",
  "released",
  "kill requested",
  "enqueued blocked",
  "enqueued dead",
  "enqueue refused",
  "run completed",
  "run failed",
  "run dead",
  "failed run of a job killed dead buried",
  "unblocked",
  "abandoned",
  "late word discarded",
  "deleted",
  "delete refused",
  "started over pending",
  "started over blocked",
  "start over refused",
  "purged",
];

/** Registers the random-history conformance test. */
export function exerciseRandomHistory(test: ConformanceTest): void {
  test(
    `a random history of enqueues, pauses, claims, outcomes, kills, releases, re-runs, deletions and purges follows the model (seed ${SEED})`,
    async (store) => {
      const history = new History(store, new SeededRandom(SEED));
      for (let step = 0; step < STEPS; step++) await history.step(step);
      const seen = Object.fromEntries(history.model.seen);
      for (const event of EXERCISED) {
        assert.ok(seen[event] > 0, `seed ${SEED}: the history never had ${event}`);
      }
      assert.ok(seen.claimed > 150, `seed ${SEED}: only ${seen.claimed} claims took a job`);
    },
  );
}

/** The result the model predicts: a value, or the refusal the store must answer with. */
function predict<T>(rule: () => T): T | ModelRefusal {
  try {
    return rule();
  } catch (error) {
    if (error instanceof ModelRefusal) return error;
    throw error;
  }
}

/** One random history on one store, step by step. */
class History {
  readonly model = new QueueModel();
  /** Claims whose runs are under way. */
  readonly #held: ClaimedJob[] = [];
  /** Claims whose runs ended (finished or released): a word from them must change nothing. */
  readonly #over: ClaimedJob[] = [];
  #made = 0;
  #now = T0;
  #where = "";

  constructor(readonly store: Store, readonly random: SeededRandom) {}

  /** Takes one random step at `T0 + step`, then compares the store with the model. */
  async step(step: number): Promise<void> {
    this.#now = T0 + step;
    this.#where = `seed ${SEED}, step ${step}`;
    const roll = this.random.int(100);
    const holding = this.#held.length > 0;
    if (roll < 18) await this.#enqueue();
    else if (roll < 22) await this.#pauseOrResume();
    else if (roll < 44 && holding) await this.#finish();
    else if (roll < 47 && holding) await this.#release();
    else if (roll < 50 && holding) await this.#kill();
    else if (roll < 53 && this.#over.length > 0) await this.#lateWord();
    else if (roll < 57) await this.#delete();
    else if (roll < 61) await this.#startOver();
    else if (roll < 63) await this.#purge();
    else await this.#claim();
    await this.#assertMatchesModel();
  }

  /** A job's id: most often one in `likely` states (when there is one), else any job's. */
  #anyId(likely?: readonly JobState[]): string {
    const jobs = this.model.jobs();
    const fitting = jobs.filter((job) => likely?.includes(job.state));
    if (fitting.length > 0 && this.random.chance(0.8)) return this.random.pick(fitting).id;
    return jobs.length === 0 ? `j${this.#made}` : this.random.pick(jobs).id;
  }

  #someQueues(): string[] {
    return QUEUES.filter(() => this.random.chance(0.5));
  }

  async #enqueue(): Promise<void> {
    const { random } = this;
    const jobs: NewJob[] = [];
    for (let i = random.between(1, 3); i > 0; i--) {
      // Recent jobs, so that jobs after them often wait and are then released or abandoned.
      const earlier = [...this.model.jobs().map((job) => job.id), ...jobs.map((job) => job.id)]
        .slice(-12);
      jobs.push(newJob(`j${this.#made++}`, {
        queue: random.pick(QUEUES),
        // Many jobs scheduled later at high levels: the case a plain search walks through.
        priority: random.chance(0.3) ? random.between(5, 8) : random.between(-2, 3),
        runAt: this.#now + random.between(-5, random.chance(0.3) ? 400 : 5),
        after: random.chance(0.35) && earlier.length > 0
          ? [random.pick(earlier), ...random.chance(0.3) ? [random.pick(earlier)] : []]
          : [],
      }));
    }
    if (random.chance(0.08)) {
      // A job with a taken id, or after one that does not exist: the whole batch is refused.
      const bad = random.chance(0.5) ? newJob(this.#anyId()) : newJob("x", { after: ["ghost"] });
      jobs.splice(random.int(jobs.length + 1), 0, bad);
    }
    const refusal = predict(() => this.model.enqueue(jobs, this.#now));
    if (refusal instanceof ModelRefusal) {
      this.model.note("enqueue refused");
      await assert.rejects(this.store.enqueue(jobs, this.#now), QueueError, this.#where);
    } else {
      await this.store.enqueue(jobs, this.#now);
    }
  }

  async #pauseOrResume(): Promise<void> {
    const queue = this.random.pick(QUEUES);
    if (this.random.chance(0.5)) {
      const paused = await this.store.pauseQueue(queue, this.#now);
      assert.equal(paused, this.model.pause(queue, this.#now), this.#where);
    } else {
      assert.equal(await this.store.resumeQueue(queue), this.model.resume(queue), this.#where);
    }
  }

  #takeHeld(): ClaimedJob {
    return this.#held.splice(this.random.int(this.#held.length), 1)[0];
  }

  async #finish(): Promise<void> {
    const job = this.#takeHeld();
    // A killed run fails, whatever its command did (the executor's rule).
    const state = this.model.get(job.id)!.kill !== null
      ? "failed"
      : this.random.pick(["completed", "completed", "failed", "dead"] as const);
    const retryAt = state === "failed" ? this.#now + this.random.between(-3, 6) : undefined;
    const ended = { ...outcome(state, { finishedAt: this.#now }), retryAt };
    assert.equal(await this.store.finishAttempt(job, ended), true, this.#where);
    this.model.finish(job.id, state, this.#now, retryAt);
    this.#over.push(job);
  }

  async #release(): Promise<void> {
    const job = this.#takeHeld();
    assert.equal(await this.store.releaseJob(job, this.#now), true, this.#where);
    this.model.release(job.id);
    this.#over.push(job);
  }

  async #kill(): Promise<void> {
    const job = this.random.pick(this.#held);
    const mode = this.random.pick(["retry", "dead"] as const);
    const request = await this.store.requestKill(job.id, mode);
    assert.deepEqual(
      [request.id, request.claimToken, request.mode, request.attempt],
      [job.id, job.claimToken, mode, job.attempts],
      this.#where,
    );
    this.model.requestKill(job.id, mode);
  }

  /** A word from a run that is over (its outcome, release or live output) changes nothing. */
  async #lateWord(): Promise<void> {
    const job = this.random.pick(this.#over);
    const now = this.#now;
    const kind = this.random.int(3);
    const changed = kind === 0
      ? await this.store.finishAttempt(job, outcome("completed", { finishedAt: now }))
      : kind === 1
      ? await this.store.releaseJob(job, now)
      : await this.store.recordLiveOutput(job, {
        stdout: new Uint8Array([1]),
        stderr: new Uint8Array(),
        stdoutTotal: 1,
        stderrTotal: 0,
        updatedAt: now,
      });
    assert.equal(changed, false, `${this.#where}: a late word about ${job.id}`);
    this.model.note("late word discarded");
  }

  async #delete(): Promise<void> {
    const ids = Array.from({ length: this.random.between(1, 2) }, () => this.#anyId());
    const expected = predict(() => this.model.delete(ids, this.#now));
    this.model.note(expected instanceof ModelRefusal ? "delete refused" : "deleted");
    if (expected instanceof ModelRefusal) {
      await assert.rejects(this.store.deleteJobs({ ids }, this.#now), QueueError, this.#where);
    } else {
      assert.equal(await this.store.deleteJobs({ ids }, this.#now), expected, this.#where);
    }
  }

  /** `retry` of finished jobs, or `dlq retry` of dead ones (sometimes of every dead job). */
  async #startOver(): Promise<void> {
    const revive = this.random.chance(0.4);
    const from: JobState[] = revive ? ["dead"] : ["completed", "dead"];
    const ids = revive && this.random.chance(0.2)
      ? "all"
      : Array.from({ length: this.random.between(1, 2) }, () => this.#anyId(from));
    const expected = predict(() => this.model.startOver(ids, from, this.#now));
    const started = revive
      ? this.store.reviveDead(ids, this.#now)
      : this.store.rerunJobs(ids as string[], this.#now);
    this.model.note(expected instanceof ModelRefusal ? "start over refused" : "started over");
    if (expected instanceof ModelRefusal) {
      await assert.rejects(started, QueueError, `${this.#where}: ${expected.message}`);
    } else {
      assert.deepEqual((await started).sort(), expected.sort(), this.#where);
    }
  }

  async #purge(): Promise<void> {
    const states = this.random.pick([["completed"], ["dead"], ["completed", "dead"]] as const);
    const before = this.#now - this.random.between(0, 200);
    const purged = this.model.purge(states, before);
    assert.equal(await this.store.purgeJobs(states, before), purged, this.#where);
    if (purged > 0) this.model.note("purged");
  }

  async #claim(): Promise<void> {
    const queues = this.random.chance(0.3) ? this.#someQueues() : undefined;
    const workerId = this.random.pick(WORKERS);
    const expected = this.model.next(this.#now, queues);
    const job = await this.store.claim(workerId, this.#now, queues && { queues });
    assert.equal(job?.id, expected, `${this.#where}: the job to claim from ${queues ?? "all"}`);
    this.model.note(job ? "claimed" : "nothing to claim");
    if (!job) return;
    const claimed = this.model.claim(job.id, workerId);
    assert.deepEqual(
      [job.state, job.attempts, job.workerId, job.startedAt],
      ["processing", claimed.attempts, workerId, this.#now],
      this.#where,
    );
    this.#held.push(job);
  }

  /** Asserts that everything the store reports about its jobs and queues is what the model holds. */
  async #assertMatchesModel(): Promise<void> {
    const { store, model } = this;
    const [now, where] = [this.#now, this.#where];
    const queues = this.#someQueues();
    const view = (job: { id: string; state: JobState; attempts: number; runAt: number }) =>
      `${job.id} ${job.state} ${job.attempts} ${job.runAt - T0}`;
    assert.deepEqual(
      (await store.listJobs({})).map(view),
      model.jobs().map(view).reverse(),
      `${where}: every job, newest first`,
    );
    assert.deepEqual({ ...await store.countByState() }, model.counts(), `${where}: counts`);
    assert.equal(await store.countUnfinished(), model.countUnfinished(), `${where}: unfinished`);
    assert.equal(
      await store.countUnfinished({ queues }),
      model.countUnfinished({ queues }),
      `${where}: unfinished in ${queues}`,
    );
    assert.equal(await store.nextRunAt(), model.nextRunAt(), `${where}: next run_at`);
    assert.equal(
      await store.nextRunAt({ queues }),
      model.nextRunAt(queues),
      `${where}: next run_at in ${queues}`,
    );
    assert.equal(await store.oldestWaitingRunAt(), model.oldestWaitingRunAt(), `${where}: oldest`);
    const scheduled = model.scheduled(now);
    const listed = await store.listScheduled(now, 1_000);
    assert.deepEqual(
      listed.map((job) => job.id).sort(),
      scheduled.map((job) => job.id).sort(),
      `${where}: scheduled`,
    );
    assert.deepEqual(
      listed.map((job) => job.runAt),
      scheduled.map((job) => job.runAt),
      `${where}: scheduled soonest first`,
    );
    assert.deepEqual(
      (await store.listScheduled(now, 2)).map((job) => job.runAt),
      scheduled.slice(0, 2).map((job) => job.runAt),
      `${where}: the 2 scheduled soonest`,
    );
    assert.deepEqual(
      (await store.listQueues()).map((q) => ({ ...q, counts: { ...q.counts } })),
      model.queues(),
      `${where}: queues`,
    );
    for (const workerId of WORKERS) {
      const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
      assert.deepEqual(
        (await store.listKillRequests(workerId)).map((k) => ({ id: k.id, mode: k.mode }))
          .sort(byId),
        model.killRequests(workerId).sort(byId),
        `${where}: kill requests of ${workerId}`,
      );
    }
  }
}
