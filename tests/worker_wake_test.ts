/**
 * Waking workers: enqueues signal this host's live worker processes, and
 * never a process that merely reuses a registered pid.
 *
 * @module
 */

import assert from "node:assert/strict";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import { hostname, processStartTime } from "../lib/worker/process_info.ts";
import { pokeLocalWorkers } from "../lib/worker/wake.ts";
import {
  enqueue,
  exitWithin,
  jobCounts,
  killProcess,
  liveWorkers,
  processExists,
  showJob,
  startWorker,
  waitFor,
  withQueue,
} from "./helpers.ts";

Deno.test("pokeLocalWorkers() never signals a process whose start time does not match", () =>
  withQueue(async ({ db }) => {
    const bystander = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const store = await openSqliteStore(db);
    try {
      const now = Date.now();
      await store.registerWorker({
        id: "impostor",
        pid: bystander.pid,
        host: hostname(),
        threads: 1,
        startedAt: now,
        heartbeatAt: now,
        stopRequested: false,
        procStart: "1", // Not when `sleep` started: its pid was "reused".
      });
      await pokeLocalWorkers(store);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(processExists(bystander.pid), "SIGUSR2 would have ended the bystander");
      assert.notEqual(processStartTime(bystander.pid), null);
    } finally {
      await store.close();
      bystander.kill("SIGKILL");
      await bystander.status;
    }
  }));

Deno.test("a worker process survives the pokes of many enqueues and runs every job", () =>
  withQueue(async ({ db }) => {
    await jobCounts(db);
    const worker = startWorker(db, ["--count", "2"]);
    try {
      await waitFor("the worker to register", async () => (await liveWorkers(db)).length === 1);
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push(await enqueue(db, "true"));
      for (const id of ids) {
        await waitFor(
          `${id} to complete`,
          async () => (await showJob(db, id)).state === "completed",
        );
      }
      assert.equal((await liveWorkers(db))[0].pid, worker.pid, "the same process is still serving");
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
  }));
