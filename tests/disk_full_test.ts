/**
 * A full disk: commands fail with one line and damage nothing, and a worker
 * that cannot record an outcome keeps it, claims nothing new, and records it
 * once there is room again. Needs root, to mount a tiny tmpfs.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  assertRefused,
  cli,
  cliOk,
  enqueue,
  exitWithin,
  killProcess,
  liveWorkers,
  showJob,
  startWorker,
  waitFor,
  withQueue,
} from "./helpers.ts";

const canMount = Deno.build.os === "linux" && Deno.uid() === 0;

async function run(program: string, ...args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
}

/** Fills the file system holding `dir` until writes fail; returns the filler's path. */
async function fillDisk(dir: string): Promise<string> {
  const filler = `${dir}/filler`;
  await run("dd", "if=/dev/zero", `of=${filler}`, "bs=4096");
  return filler;
}

Deno.test({
  name:
    "on a full disk commands fail in one line, and a worker keeps its outcome until there is room",
  ignore: !canMount,
  fn: () =>
    withQueue(async ({ dir }) => {
      const mnt = `${dir}/mnt`;
      await Deno.mkdir(mnt);
      const mounted = await run("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt);
      assert.equal(mounted.code, 0, new TextDecoder().decode(mounted.stderr));
      const db = `${mnt}/queue.db`;
      const worker = startWorker(db, ["--count", "1"]);
      try {
        const ended = `${dir}/first.ended`;
        const first = await enqueue(
          db,
          `sleep 1; echo first; date +%s%3N > ${ended}`,
          "--priority",
          "1",
        );
        const second = await enqueue(db, "echo second");
        await waitFor("the first job to run", async () =>
          (await showJob(db, first)).state === "processing");
        const filler = await fillDisk(mnt);

        // Writing fails while the disk is full: one line, exit 1.
        assertRefused(await cli(["enqueue", "echo third"], { db }), 1, "enqueue on a full disk");
        // Several failed tries (100 ms, 200 ms, 400 ms, … apart): over 3 s of waiting.
        await waitFor(
          "the worker to report six times that it cannot record the outcome",
          () =>
            (worker.stdout().match(/cannot record its outcome/g) ?? []).length >= 6,
        );
        assert.equal(
          (await showJob(db, second)).state,
          "pending",
          "nothing new is claimed meanwhile",
        );

        await Deno.remove(filler);
        await waitFor("both jobs to complete", async () =>
          (await showJob(db, first)).state === "completed" &&
          (await showJob(db, second)).state === "completed");
        assert.equal(await cliOk(["logs", first], { db }), "first\n");
        // The run ended before the disk filled up, not when its outcome could be stored.
        const late = Date.parse((await showJob(db, first)).finished_at!) -
          Number(await Deno.readTextFile(ended));
        assert.ok(Math.abs(late) < 1_000, `end recorded ${late} ms after the real one`);

        worker.signal("SIGTERM");
        assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
        const check = new DatabaseSync(db);
        try {
          assert.equal(check.prepare("PRAGMA integrity_check").get()!.integrity_check, "ok");
        } finally {
          check.close();
        }
      } finally {
        killProcess(worker);
        await run("umount", "-l", mnt);
      }
    }),
});

Deno.test({
  name: "with no inodes left a worker says once that runs leave no exit status, and when they do",
  ignore: !canMount,
  fn: () =>
    withQueue(async ({ dir }) => {
      const mnt = `${dir}/mnt`;
      await Deno.mkdir(mnt);
      const mounted = await run(
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=20m,nr_inodes=64",
        "tmpfs",
        mnt,
      );
      assert.equal(mounted.code, 0, new TextDecoder().decode(mounted.stderr));
      const db = `${mnt}/queue.db`;
      const worker = startWorker(db);
      try {
        const first = await enqueue(db, "true");
        await waitFor(
          "the first job",
          async () => (await showJob(db, first)).state === "completed",
        );
        // Room for data, none for a new file: the database works, a run's status file cannot
        // be made, and nothing else would tell (the wrapper's error is kept out of the job).
        await Deno.mkdir(`${mnt}/fill`);
        for (let i = 0;; i++) {
          try {
            Deno.writeFileSync(`${mnt}/fill/${i}`, new Uint8Array());
          } catch {
            break;
          }
        }
        const said = /cannot write in \S+\.runs \(.*\): runs leave no exit status/;
        await waitFor("the worker to say it", () => said.test(worker.stdout()));
        const saidAt = Date.now();
        const second = await enqueue(db, "echo second");
        await waitFor(
          "the second job",
          async () => (await showJob(db, second)).state === "completed",
        );
        assert.equal(await cliOk(["logs", second], { db }), "second\n");
        // Several heartbeats later it has still said it once.
        await waitFor(
          "two more heartbeats",
          async () => Date.parse((await liveWorkers(db))[0].heartbeat_at) > saidAt + 2_000,
        );
        assert.equal(worker.stdout().split("\n").filter((line) => said.test(line)).length, 1);

        await Deno.remove(`${mnt}/fill`, { recursive: true });
        await waitFor(
          "the worker to say runs leave their status again",
          () => /takes files again: runs leave their exit status/.test(worker.stdout()),
        );
        worker.signal("SIGTERM");
        assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      } finally {
        killProcess(worker);
        await run("umount", "-l", mnt);
      }
    }),
});
