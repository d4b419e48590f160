/**
 * The job runner (lib/worker/job_runner.ts) against a real SQLite store in a
 * temp dir, with a fake clock and a fake executor: how stops, forced kills,
 * `queuectl kill`, wakes and a failing database meet a claim or a run. The
 * fakes are the seams the runner takes; storage is real.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { formatDuration } from "../lib/duration.ts";
import type { NewJob } from "../lib/job.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { Store } from "../lib/store/store.ts";
import type { CommandResult, CommandSpec, RunningCommand } from "../lib/worker/executor.ts";
import { JobRunner, type JobRunnerOptions, type RunnerEnd } from "../lib/worker/job_runner.ts";
import { FakeClock } from "./fake_clock.ts";
import { pathExists, waitFor, within, withQueue } from "./helpers.ts";

const T0 = 1_700_000_000_000;
/** Real time allowed for something that needs no fake time to pass. */
const PROMPTLY_MS = 5_000;

function newJob(id: string, fields: Partial<NewJob> = {}): NewJob {
  return {
    id,
    queue: "default",
    command: `echo ${id}`,
    maxRetries: 0,
    priority: 0,
    runAt: T0,
    timeoutMs: null,
    cwd: "/tmp",
    after: [],
    ...fields,
  };
}

/** How a fake run's shell ended. */
interface FakeExit {
  code?: number;
  signal?: Deno.Signal;
}

/**
 * A run that does nothing by itself: the test says when its shell exits and
 * when its output is collected. SIGKILL ends it at once, as it would a shell.
 */
class FakeRun implements RunningCommand {
  readonly pid = 4242;
  readonly done: Promise<CommandResult>;
  readonly signals: Deno.Signal[] = [];
  terminated = false;
  exited = false;
  outputBytes = 0;
  #stdout = "";
  #exit: FakeExit = {};
  #collect!: (result: CommandResult) => void;

  constructor(readonly spec: CommandSpec) {
    this.done = new Promise((resolve) => this.#collect = resolve);
  }

  signalAll(signal: Deno.Signal): void {
    this.signals.push(signal);
    if (signal === "SIGKILL" && !this.exited) this.end({ code: 137, signal });
  }

  terminate(): void {
    this.terminated = true;
  }

  /** The command prints `text` on stdout. */
  print(text: string): void {
    this.#stdout += text;
    this.outputBytes += text.length;
  }

  snapshot() {
    const stdout = new TextEncoder().encode(this.#stdout);
    return { stdout, stderr: new Uint8Array(), stdoutTotal: stdout.length, stderrTotal: 0 };
  }

  /** The shell exits; its output is still being collected until {@linkcode collect}. */
  exitShell(exit: FakeExit): void {
    this.exited = true;
    this.#exit = exit;
  }

  /** The output is collected: the run is over. */
  collect(): void {
    this.#collect({
      exitCode: this.#exit.code ?? null,
      signal: this.#exit.signal ?? null,
      timedOut: false,
      startError: null,
      stdout: this.snapshot().stdout,
      stderr: new Uint8Array(),
      stdoutDropped: 0,
      stderrDropped: 0,
    });
  }

  /** The shell exits and its output is collected. */
  end(exit: FakeExit): void {
    this.exitShell(exit);
    this.collect();
  }
}

/** Hands out {@linkcode FakeRun}s and keeps them. */
class FakeExecutor {
  readonly runs: FakeRun[] = [];
  /** Called as each run starts, before the runner sees it. */
  onLaunch: (run: FakeRun) => void = () => {};

  launch = (spec: CommandSpec): RunningCommand => {
    const run = new FakeRun(spec);
    this.runs.push(run);
    this.onLaunch(run);
    return run;
  };

  /** The `n`th run (from 1), once it has started. */
  run(n: number): Promise<FakeRun> {
    return waitFor(`run ${n} to start`, () => this.runs[n - 1], { timeoutMs: PROMPTLY_MS });
  }
}

/**
 * A claim that waits, after it has taken its job (or found none), until the
 * test opens the gate: a stop, kill or wake can then come "during" it.
 */
function gateClaims(store: Store, method: "claim" | "finishAndClaim" = "claim") {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  let claiming = false;
  const gated = new Proxy(store, {
    get(target, property) {
      if (property === method) {
        return async (...args: unknown[]) => {
          const result = await (target[method] as (...args: unknown[]) => Promise<unknown>)(
            ...args,
          );
          claiming = true;
          await gate;
          return result;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store: gated, claiming: () => claiming, open };
}

interface Bench {
  dir: string;
  db: string;
  /** The runner's own connection. */
  store: Store;
  /** Another connection, as another process's: enqueues and looks. */
  other: Store;
  clock: FakeClock;
  executor: FakeExecutor;
  lines: string[];
  runner: JobRunner;
  /** `runner.start(on)`, by default on `store`; the runner is killed and awaited after the test. */
  start(on?: Store): Promise<RunnerEnd>;
}

/** Runs `fn` with a runner on a fresh database, fake clock and fake executor. */
function withRunner(
  fn: (bench: Bench) => Promise<void>,
  options: Partial<JobRunnerOptions> = {},
): Promise<void> {
  return withQueue(async ({ dir, db }) => {
    const store = await openSqliteStore(db);
    const other = await openSqliteStore(db);
    const clock = new FakeClock(T0);
    const executor = new FakeExecutor();
    const lines: string[] = [];
    const runner = new JobRunner({
      processId: "host-1-abc",
      index: 1,
      once: false,
      wakeable: false,
      runsDir: dir,
      cgroups: null,
      launch: executor.launch,
      clock,
      log: (line) => lines.push(line),
      ...options,
    });
    let ended: Promise<unknown> = Promise.resolve();
    const start = (on: Store = store) => {
      const end = runner.start(on);
      ended = end;
      return end;
    };
    try {
      await fn({ dir, db, store, other, clock, executor, lines, runner, start });
    } finally {
      // After a failure: end what still runs before the connections close under it.
      runner.kill();
      for (const run of executor.runs) run.collect();
      await within(ended, PROMPTLY_MS, "the runner to end").catch(() => {});
      await store.close();
      await other.close();
    }
  });
}

/** Waits until the runner is in a pause of `ms` (the fake time stands still meanwhile). */
function pausing(clock: FakeClock, ms: number): Promise<boolean> {
  return waitFor(`a pause of ${ms} ms`, () => clock.pending().includes(ms), {
    timeoutMs: PROMPTLY_MS,
  });
}

function ends(ended: Promise<RunnerEnd>, what: string): Promise<RunnerEnd> {
  return within(ended, PROMPTLY_MS, what);
}

Deno.test("a stop while the runner waits for work ends the wait and the runner", () =>
  withRunner(async ({ clock, executor, runner, start }) => {
    const ended = start();
    await pausing(clock, 50);
    runner.stop();
    assert.equal(await ends(ended, "the stop to end the runner"), "stopped");
    assert.equal(executor.runs.length, 0);
  }));

Deno.test("a stop that comes during a claim gives the claimed job back untouched", () =>
  withRunner(async ({ store, other, executor, runner, start }) => {
    await other.enqueue([newJob("a", { maxRetries: 2 })], T0);
    const claims = gateClaims(store);
    const ended = start(claims.store);
    await waitFor("the claim", claims.claiming, { timeoutMs: PROMPTLY_MS });
    assert.equal((await other.getJob("a"))?.state, "processing", "the claim took it");
    runner.stop();
    claims.open();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
    assert.equal(executor.runs.length, 0, "the job never ran");
    const job = await other.getJob("a");
    assert.equal(job?.state, "pending");
    assert.equal(job?.attempts, 0, "the attempt is not counted");
    assert.equal(job?.workerId, null);
  }));

Deno.test("the next job is claimed in the transaction that records the outcome", () =>
  withRunner(async ({ store, other, executor, start }) => {
    await other.enqueue([newJob("a"), newJob("b")], T0);
    const calls: string[] = [];
    const counted = new Proxy(store, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (typeof value !== "function") return value;
        if (["claim", "finishAttempt", "finishAndClaim"].includes(String(property))) {
          return (...args: unknown[]) => {
            calls.push(String(property));
            return value.apply(target, args);
          };
        }
        return value.bind(target);
      },
    });
    void start(counted);
    (await executor.run(1)).end({ code: 0 });
    (await executor.run(2)).end({ code: 0 });
    await waitFor("b's outcome", async () => (await other.getJob("b"))?.state === "completed", {
      timeoutMs: PROMPTLY_MS,
    });
    assert.deepEqual(executor.runs.map((run) => run.spec.command), ["echo a", "echo b"]);
    assert.deepEqual(calls.slice(0, 3), ["claim", "finishAndClaim", "finishAndClaim"]);
    assert.equal((await other.getJob("a"))?.state, "completed");
  }));

Deno.test("a stop that comes while an outcome claims the next job gives that job back untouched", () =>
  withRunner(async ({ store, other, executor, runner, start }) => {
    await other.enqueue([newJob("a"), newJob("b")], T0);
    const claims = gateClaims(store, "finishAndClaim");
    const ended = start(claims.store);
    (await executor.run(1)).end({ code: 0 });
    await waitFor("the outcome and claim", claims.claiming, { timeoutMs: PROMPTLY_MS });
    assert.equal((await other.getJob("b"))?.state, "processing", "the claim took it");
    runner.stop();
    claims.open();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
    assert.equal(executor.runs.length, 1, "b never ran");
    assert.equal((await other.getJob("a"))?.state, "completed");
    const b = await other.getJob("b");
    assert.deepEqual([b?.state, b?.attempts, b?.workerId], ["pending", 0, null]);
  }));

Deno.test("a forced kill while the run's shell runs kills it and gives the job back uncounted", () =>
  withRunner(async ({ other, executor, lines, runner, start }) => {
    await other.enqueue([newJob("a", { maxRetries: 2 })], T0);
    const ended = start();
    const run = await executor.run(1);
    runner.kill();
    assert.deepEqual(run.signals, ["SIGKILL"]);
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
    const job = await other.getJob("a");
    assert.equal(job?.state, "pending");
    assert.equal(job?.attempts, 0);
    assert.deepEqual(await other.listAttempts("a"), [], "no attempt recorded");
    assert.ok(
      lines.some((line) => line.endsWith(" a killed and returned to the queue (forced shutdown)")),
    );
  }));

Deno.test("a forced kill after the run's shell exited records the run's outcome", () =>
  withRunner(async ({ other, executor, runner, start }) => {
    await other.enqueue([newJob("a", { maxRetries: 2 })], T0);
    const ended = start();
    const run = await executor.run(1);
    run.exitShell({ code: 0 });
    runner.kill();
    assert.deepEqual(run.signals, [], "nothing left to kill");
    run.collect();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
    const job = await other.getJob("a");
    assert.equal(job?.state, "completed");
    assert.equal(job?.attempts, 1);
    assert.equal(job?.exitCode, 0);
  }));

Deno.test("a forced kill that comes between the claim and the start still kills the run", () =>
  withRunner(async ({ other, executor, runner, start }) => {
    await other.enqueue([newJob("a")], T0);
    // The runner has claimed the job and is starting its run when the kill comes.
    executor.onLaunch = () => runner.kill();
    const ended = start();
    const run = await executor.run(1);
    assert.equal(await ends(ended, "the kill to end the run and the runner"), "stopped");
    assert.deepEqual(run.signals, ["SIGKILL"]);
    const job = await other.getJob("a");
    assert.equal(job?.state, "pending");
    assert.equal(job?.attempts, 0);
  }));

Deno.test("queuectl kill for another claim is ignored; the run's own exit decides", () =>
  withRunner(async ({ other, executor, runner, start }) => {
    await other.enqueue([newJob("a")], T0);
    const ended = start();
    const run = await executor.run(1);
    runner.killJob(`${run.spec.runId}-not`, "dead");
    assert.equal(run.terminated, false);
    run.end({ code: 0 });
    await waitFor("the outcome", async () => (await other.getJob("a"))?.state === "completed");
    runner.stop();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
  }));

Deno.test("queuectl kill --no-retry of the run under way ends it and sends the job to the DLQ", () =>
  withRunner(async ({ other, executor, runner, start }) => {
    await other.enqueue([newJob("a", { maxRetries: 3 })], T0);
    const ended = start();
    const run = await executor.run(1);
    const claimToken = run.spec.runId!;
    runner.killJob(claimToken, "dead");
    assert.equal(run.terminated, true, "SIGTERM, then SIGKILL after the grace");
    // The command traps SIGTERM and exits 0: killed all the same.
    run.end({ code: 0 });
    const job = await waitFor("the job in the DLQ", async () => {
      const job = await other.getJob("a");
      return job?.state === "dead" ? job : undefined;
    });
    assert.equal(job.attempts, 1, "retries remained, but --no-retry");
    assert.equal(job.lastError, "killed by 'queuectl kill' --no-retry");
    runner.stop();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
  }));

Deno.test("a wake that comes during a claim that found nothing ends the next pause at once", () =>
  withRunner(async ({ store, other, clock, executor, runner, start }) => {
    let pausesBeforeTheRun: number[] | undefined;
    executor.onLaunch = () => pausesBeforeTheRun = [...clock.requested];
    const claims = gateClaims(store);
    const ended = start(claims.store);
    await waitFor("the claim", claims.claiming, { timeoutMs: PROMPTLY_MS });
    // Enqueued (by another process) after the claim looked, announced before it ended.
    await other.enqueue([newJob("a")], T0);
    runner.wake();
    claims.open();
    // No fake time passes: only the wake can bring the runner back to claim.
    const run = await executor.run(1);
    assert.equal(run.spec.command, "echo a");
    assert.deepEqual(pausesBeforeTheRun, [], "no pause was taken");
    run.end({ code: 0 });
    runner.stop();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
  }));

Deno.test("a wake ends an idle pause; without one the runner claims after the poll", () =>
  withRunner(async ({ other, clock, executor, runner, start }) => {
    const ended = start();
    await pausing(clock, 50);
    await other.enqueue([newJob("a")], T0);
    runner.wake();
    (await executor.run(1)).end({ code: 0 });

    await pausing(clock, 50);
    await other.enqueue([newJob("b")], T0);
    assert.equal(executor.runs.length, 1, "the fake time stands still: no claim yet");
    clock.advance(50);
    (await executor.run(2)).end({ code: 0 });
    runner.stop();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
  }));

Deno.test("a wake ends an idle pause and the runner claims without asking whether the database changed", () =>
  withRunner(async ({ store, other, clock, executor, runner, start }) => {
    // On PostgreSQL that question is a round trip, which the wake (news of work) makes needless.
    let asked = 0;
    const notifier = new Proxy(store.notifier, {
      get(target, property) {
        if (property === "changed") {
          return () => {
            asked++;
            return target.changed();
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const counted = new Proxy(store, {
      get(target, property) {
        if (property === "notifier") return notifier;
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const ended = start(counted);
    await pausing(clock, 50);
    await other.enqueue([newJob("a")], T0);
    const askedBeforeTheWake = asked;
    runner.wake();
    (await executor.run(1)).end({ code: 0 });
    assert.equal(asked, askedBeforeTheWake, "the wake alone brought the claim");
    runner.stop();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
  }));

Deno.test("where news reaches every host, an idle runner never asks whether the database changed", () =>
  withRunner(async ({ store, other, clock, executor, runner, start }) => {
    // As on PostgreSQL: the wakes carry the news; the poll only claims again.
    let asked = 0;
    const notifier = new Proxy(store.notifier, {
      get(target, property) {
        if (property === "changed") {
          return () => {
            asked++;
            return target.changed();
          };
        }
        if (property === "listen") return () => Promise.resolve({ close: () => Promise.resolve() });
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const listening = new Proxy(store, {
      get(target, property) {
        if (property === "notifier") return notifier;
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const ended = start(listening);
    await pausing(clock, 50);
    await other.enqueue([newJob("a")], T0);
    assert.equal(executor.runs.length, 0, "the fake time stands still: no claim yet");
    clock.advance(50);
    (await executor.run(1)).end({ code: 0 });
    await pausing(clock, 50);
    assert.equal(asked, 0, "never asked");
    runner.stop();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
  }));

Deno.test("an outcome is retried with backoff while the database fails, with the run's end time", () =>
  withRunner(async ({ db, other, clock, executor, lines, runner, start }) => {
    await other.enqueue([newJob("a")], T0);
    const ended = start();
    const run = await executor.run(1);
    clock.advance(1_500);
    // A real failure of the store: its update of the job is refused until the trigger goes.
    const raw = new DatabaseSync(db);
    raw.exec(`CREATE TRIGGER refuse_outcome BEFORE UPDATE OF state ON jobs
      WHEN NEW.state <> 'processing' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`);
    try {
      run.end({ code: 0 });
      const refusals = () =>
        lines.filter((line) => line.includes(" a cannot record its outcome: "));
      for (const [failures, waitMs] of [100, 200, 400, 800].entries()) {
        // Each refusal is logged as its wait begins: the wait is then the only pause.
        await waitFor(`refusal ${failures + 1}`, () => refusals().length === failures + 1, {
          timeoutMs: PROMPTLY_MS,
        });
        assert.deepEqual(clock.pending(), [waitMs], "each wait double the last");
        if (waitMs < 800) clock.advance(waitMs);
      }
      assert.match(refusals()[0], /injected failure; retrying$/);
      assert.equal((await other.getJob("a"))?.state, "processing");
      raw.exec("DROP TRIGGER refuse_outcome");
    } finally {
      raw.close();
    }
    clock.advance(800);
    const job = await waitFor("the outcome", async () => {
      const job = await other.getJob("a");
      return job?.state === "completed" ? job : undefined;
    });
    assert.equal(job.finishedAt, T0 + 1_500, "when the run ended, not when it got recorded");
    assert.equal((await other.listAttempts("a"))[0].finishedAt, T0 + 1_500);
    assert.ok(lines.some((line) => line.endsWith(` a succeeded in ${formatDuration(1_500)}`)));
    runner.stop();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
  }));

Deno.test("a run's output is stored while it runs, and its status file is removed at its end", () =>
  withRunner(async ({ dir, other, clock, executor, lines, runner, start }) => {
    await other.enqueue([newJob("a", { command: "echo one\necho \x1b[2J" })], T0);
    const ended = start();
    const run = await executor.run(1);
    const statusFile = run.spec.statusFile!;
    assert.equal(statusFile, `${dir}/${run.spec.runId}`);
    await Deno.writeTextFile(statusFile, "0\n");
    run.print("halfway\n");
    await pausing(clock, 100);
    clock.advance(100);
    const live = await waitFor("the live output", () => other.liveOutput("a"));
    assert.equal(new TextDecoder().decode(live.stdout), "halfway\n");
    assert.equal(live.updatedAt, T0 + 100);
    run.end({ code: 0 });
    await waitFor("the outcome", async () => (await other.getJob("a"))?.state === "completed");
    assert.equal(await pathExists(statusFile), false);
    const started = lines.find((line) => line.includes(" a started "));
    assert.equal(
      started,
      `${new Date(T0).toISOString()} [host-1-abc/1] a started (attempt 1 of 1, worker 1): ` +
        "echo one\\necho ?[2J",
    );
    runner.stop();
    assert.equal(await ends(ended, "the runner to stop"), "stopped");
  }));

Deno.test("with once, the runner ends after its one job", () =>
  withRunner(async ({ other, executor, start }) => {
    await other.enqueue([newJob("a"), newJob("b")], T0);
    const ended = start();
    (await executor.run(1)).end({ code: 0 });
    assert.equal(await ends(ended, "the runner to end after one job"), "done");
    assert.equal((await other.getJob("b"))?.state, "pending");
  }, { once: true }));
