/**
 * Black-box tests of the `schedule` commands (lib/cli/commands/schedule_*.ts)
 * and of firings made by `worker start` processes (lib/worker/scheduler.ts):
 * what each command prints and refuses, and an `--every 2s` schedule served
 * by two worker processes on both stores, which must run once per firing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { onBothStores } from "./both_stores.ts";
import {
  assertQueueUnchanged,
  assertRefused,
  cli,
  cliOk,
  exitWithin,
  killProcess,
  listJobs,
  queueSnapshot,
  startWorker,
  waitFor,
  withQueue,
} from "./helpers.ts";

const ISO_SECOND = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** `schedule list --json` of `db`. */
async function schedules(db: string): Promise<Record<string, unknown>[]> {
  return JSON.parse(await cliOk(["schedule", "list", "--json"], { db }));
}

Deno.test("schedule add, list, pause, resume, run and remove", async () => {
  await withQueue(async ({ db, dir }) => {
    const added = await cliOk([
      "schedule",
      "add",
      "nightly",
      "--cron",
      "0 3 * * *",
      "--tz",
      "Europe/Berlin",
      "--queue",
      "maint",
      "--timeout",
      "1h",
      "echo nightly",
    ], { db, cwd: dir });
    const next = /^schedule nightly: next firing (\S+)\n$/.exec(added)?.[1];
    assert.match(next ?? "", ISO_SECOND, added);
    // 03:00 in Berlin is 01:00 or 02:00 UTC.
    assert.match(next!, /T0[12]:00:00Z$/);

    assertRefused(
      await cli(["schedule", "add", "nightly", "--every", "1m", "echo again"], { db }),
      1,
      "a taken name",
    );
    await cliOk(
      ["schedule", "add", "tick", "--every", "90s", "--overlap", "allow", "echo tick"],
      { db, cwd: dir },
    );
    const [nightly, tick] = await schedules(db);
    assert.equal(nightly.name, "nightly");
    assert.equal(nightly.cron, "0 3 * * *");
    assert.equal(nightly.time_zone, "Europe/Berlin");
    assert.deepEqual(nightly.job, {
      command: "echo nightly",
      queue: "maint",
      timeout_ms: 3_600_000,
      cwd: Deno.realPathSync(dir),
    });
    assert.equal(nightly.overlap, "skip");
    assert.equal(nightly.catch_up, "latest");
    assert.equal(nightly.paused, false);
    assert.equal(tick.every_ms, 90_000);
    assert.equal(tick.overlap, "allow");

    await cliOk(["schedule", "add", "nightly", "--replace", "--every", "1h", "echo hourly"], {
      db,
      cwd: dir,
    });
    const replaced = (await schedules(db))[0];
    assert.equal(replaced.every_ms, 3_600_000);
    assert.equal((replaced.job as { command: string }).command, "echo hourly");

    assert.match(await cliOk(["schedule", "pause", "tick"], { db }), /^paused schedule tick/);
    assert.equal((await schedules(db))[1].paused, true);
    assert.equal((await schedules(db))[1].next_fire_at, null);
    const resumed = await cliOk(["schedule", "resume", "tick"], { db });
    assert.match(resumed, /^resumed schedule tick: next firing \S+Z\n$/);
    assert.equal((await schedules(db))[1].paused, false);

    const id = (await cliOk(["schedule", "run", "nightly"], { db })).trim();
    assert.match(id, /^nightly@\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const [job] = await listJobs(db);
    assert.equal(job.id, id);
    assert.equal(job.command, "echo hourly");
    assert.equal(job.queue, "default", "the replacing schedule's spec, not the old one's");
    assert.equal((await schedules(db))[0].last_job_id, id);
    assert.equal((await schedules(db))[0].last_job_state, "pending");

    const table = await cliOk(["schedule", "list"], { db });
    assert.match(
      table,
      /^NAME +TIMING +ZONE +NEXT +LAST +LAST JOB +STATE +SKIPPED +LAST SKIP +COMMAND\n/,
    );
    assert.match(
      table,
      /\nnightly +every 1h +- +\S+Z +\S+Z +nightly@\S+ +pending +0 +- +echo hourly\n/,
    );

    assert.match(await cliOk(["schedule", "remove", "tick"], { db }), /^removed schedule tick/);
    assertRefused(await cli(["schedule", "remove", "tick"], { db }), 1, "a missing schedule");
    assertRefused(await cli(["schedule", "run", "tick"], { db }), 1, "running a missing one");
    assert.deepEqual((await schedules(db)).map((s) => s.name), ["nightly"]);
  });
});

Deno.test("schedule add refuses bad input with one line, exit 2, and changes nothing", async () => {
  await withQueue(async ({ db }) => {
    await cliOk(["schedule", "add", "kept", "--every", "1h", "true"], { db });
    const before = await queueSnapshot(db);
    const refused: string[][] = [
      ["bad name", "--every", "1m", "true"],
      ["x\ny", "--every", "1m", "true"],
      ["ok", "true"],
      ["ok", "--every", "1m", "--cron", "* * * * *", "true"],
      ["ok", "--cron", "61 * * * *", "true"],
      ["ok", "--cron", "0 0 30 2 *", "true"],
      ["ok", "--cron", "0 3 * * *", "--tz", "Mars/Olympus", "true"],
      ["ok", "--every", "100ms", "true"],
      ["ok", "--every", "1m", "--tz", "UTC", "true"],
      ["ok", "--every", "1m", "--overlap", "queue", "true"],
      ["ok", "--every", "1m", "--catch-up", "all", "true"],
      ["ok", "--every", "1m", "--id", "fixed", "true"],
      ["ok", "--every", "1m", '{"command": "true", "id": "fixed"}'],
      ["ok", "--every", "1m", '["true", "false"]'],
      ["ok", "--every", "1m", "echo", "unquoted"],
      ["ok", "--every", "1m", "--cwd", "/no/such/dir", "true"],
      ["ok", "--every", "1m"],
    ];
    for (const args of refused) {
      assertRefused(await cli(["schedule", "add", ...args], { db }), 2, args.join(" "));
    }
    assertRefused(await cli(["schedule", "pause", "a b"], { db }), 2, "pause of a bad name");
    await assertQueueUnchanged(db, before, "refused input changed the queue");
  });
});

onBothStores(
  "an --every 2s schedule served by two worker processes runs once per firing",
  async ({ db, dir }) => {
    await cliOk(["schedule", "add", "tick", "--every", "2s", "echo tick"], { db, cwd: dir });
    const workers = [startWorker(db), startWorker(db)];
    try {
      await waitFor(
        "three firings run",
        async () => (await listJobs(db)).filter((job) => job.state === "completed").length >= 3,
        { timeoutMs: 30_000, intervalMs: 200 },
      );
    } finally {
      for (const worker of workers) worker.signal("SIGTERM");
      for (const worker of workers) {
        await exitWithin(worker, 20_000).catch(() => killProcess(worker));
      }
    }
    const jobs = await listJobs(db);
    const logs = workers.map((worker) => worker.stdout()).join("");
    for (const job of jobs) {
      const firing = Date.parse(job.id.replace(/^tick@/, ""));
      assert.equal(firing % 2_000, 0, `${job.id}: a firing falls on an even second`);
      // On time: enqueued within a second of the firing (a generous margin on a loaded machine).
      const late = Date.parse(job.created_at) - firing;
      assert.ok(late >= 0 && late < 2_000, `${job.id} was enqueued ${late} ms after its firing`);
      if (job.state !== "completed") continue;
      assert.equal(job.attempts, 1, `${job.id} ran once`);
      const starts = logs.split(`] ${job.id} started`).length - 1;
      assert.equal(starts, 1, `${job.id} started ${starts} times across both workers`);
    }
    const enqueuedBy = workers.map((worker) =>
      worker.stdout().split("schedule tick: enqueued").length - 1
    );
    assert.equal(enqueuedBy.reduce((a, b) => a + b), jobs.length, `firings: ${enqueuedBy}`);
  },
);
