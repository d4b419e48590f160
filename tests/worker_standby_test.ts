/**
 * Shells started ahead of their jobs (lib/worker/standby.ts), on the fast
 * launch path: a run's shell is already waiting when its job is claimed;
 * jobs the shell would run differently start in a fresh one; a stopped or
 * killed worker leaves no waiting shell, and a starting worker removes the
 * cgroups that such shells left behind.
 *
 * @module
 */

import assert from "node:assert/strict";
import { isFolder, probeRunCgroups } from "../lib/worker/containment.ts";
import { libcSpawner } from "../lib/worker/libc_spawn.ts";
import {
  drain,
  enqueueIn,
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

/** Shells start ahead only where the fast launch path is used. */
const FAST_PATH = Deno.build.os === "linux" && libcSpawner().spawner !== null &&
  Deno.env.get("QUEUECTL_LAUNCH") !== "command";

/** The clock ticks since boot when `pid` started, as an epoch ms. */
function startedAtMs(ticks: number): number {
  const bootSeconds = Number(/^btime (\d+)$/m.exec(Deno.readTextFileSync("/proc/stat"))![1]);
  // CLK_TCK is 100 on every Linux Deno runs on.
  return bootSeconds * 1000 + ticks * 10;
}

/** The processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) {
        children.push(Number(entry.name));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

/** The run id a process carries in its environment, if any. */
function runIdOf(pid: number): string | undefined {
  try {
    const environ = Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0");
    return environ.find((entry) => entry.startsWith("QUEUECTL_RUN_ID="))?.slice(16);
  } catch {
    return undefined;
  }
}

Deno.test({
  name: "standby: a job runs in a shell that was started before it was enqueued",
  ignore: !FAST_PATH,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      await jobCounts(db);
      const worker = startWorker(db, ["--count", "1"]);
      try {
        await waitFor("the worker to register", async () => (await liveWorkers(db)).length === 1);
        await waitFor("a shell waiting for a job", () => childrenOf(worker.pid).length === 1);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const id = await enqueueIn(dir, db, "cut -d' ' -f22 /proc/$$/stat > started");
        await waitFor("the job to complete", async () =>
          (await showJob(db, id)).state === "completed");
        const job = await showJob(db, id);
        const shellStarted = startedAtMs(Number(await Deno.readTextFile(`${dir}/started`)));
        // Its shell was waiting before the job existed: started at least 300 ms earlier, less a tick.
        assert.ok(
          shellStarted < Date.parse(job.created_at) - 200,
          `shell started ${shellStarted}, job created ${Date.parse(job.created_at)}`,
        );
        worker.signal("SIGTERM");
        assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      } finally {
        killProcess(worker);
      }
    }),
});

Deno.test({
  name: "standby: a job that sets IFS, or whose folder is gone, runs as in a fresh shell",
  ignore: !FAST_PATH,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      await Deno.mkdir(`${dir}/gone`);
      // A fresh dash ignores IFS from its environment; an export in a waiting shell would not.
      const ifs = await enqueueIn(dir, db, `printf %s "$IFS" | od -An -c > ifs`, "--env", "IFS=:");
      const gone = await enqueueIn(`${dir}/gone`, db, "true", "--max-retries", "0");
      await Deno.remove(`${dir}/gone`);
      await drain(db, "--count", "1");
      assert.equal((await showJob(db, ifs)).state, "completed");
      assert.equal((await Deno.readTextFile(`${dir}/ifs`)).replace(/\s+/g, " ").trim(), "\\t \\n");
      const failed = await showJob(db, gone);
      assert.equal(failed.state, "dead");
      assert.match(failed.last_error ?? "", /working directory .*gone does not exist/);
    }),
});

Deno.test({
  name:
    "standby: a stopped worker ends its waiting shells and removes their cgroups; a killed one's end by themselves",
  ignore: !FAST_PATH,
  fn: () =>
    withQueue(async ({ db }) => {
      await jobCounts(db);
      const cgroups = probeRunCgroups().folder;
      for (const stop of ["SIGTERM", "SIGKILL"] as const) {
        const worker = startWorker(db, ["--count", "2"]);
        try {
          const shells = await waitFor(
            "a waiting shell per lane",
            () => {
              const children = childrenOf(worker.pid);
              return children.length === 2 ? children : undefined;
            },
          );
          const runIds = shells.map(runIdOf);
          assert.ok(runIds.every((runId) => runId !== undefined), String(runIds));
          worker.signal(stop);
          await exitWithin(worker, 20_000);
          await waitFor("the waiting shells to end", () =>
            shells.every((pid) => !processExists(pid)));
          if (cgroups !== null && stop === "SIGTERM") {
            const left = runIds.filter((runId) =>
              isFolder(`${cgroups}/${runId}`)
            );
            assert.deepEqual(left, [], "cgroups of waiting shells are left");
          }
        } finally {
          killProcess(worker);
        }
      }
    }),
});

Deno.test({
  name:
    "standby: a starting worker removes run cgroups that have stood empty for a minute, and only those",
  ignore: !FAST_PATH || probeRunCgroups().folder === null,
  fn: async () => {
    const folder = probeRunCgroups().folder!;
    const stale = `${folder}/${crypto.randomUUID()}`;
    const fresh = `${folder}/${crypto.randomUUID()}`;
    Deno.mkdirSync(stale);
    Deno.mkdirSync(fresh);
    try {
      const touched = await new Deno.Command("touch", { args: ["-d", "2 minutes ago", stale] })
        .output();
      assert.ok(touched.success);
      assert.equal(probeRunCgroups().folder, folder);
      assert.deepEqual([isFolder(stale), isFolder(fresh)], [false, true]);
    } finally {
      for (const path of [stale, fresh]) Deno.remove(path).catch(() => {});
    }
  },
});
