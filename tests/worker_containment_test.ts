/**
 * A run's end ends every process it started (lib/worker/containment.ts):
 * processes that left the run's process group or session, or daemonized
 * with an empty environment, are gone after a timeout, `queuectl kill`, a
 * forced shutdown, a normal exit, and recovery from a SIGKILLed worker; with
 * a per-run cgroup and without one (QUEUECTL_NO_CGROUPS). Recovery ends only
 * the lost run's processes, never a run of another database whose job has
 * the same id.
 *
 * The escaping processes carry a number no other process uses in their
 * arguments (`sleep 123456`), so that leftovers are found in /proc, and
 * killed in `finally` when a test fails.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NO_CGROUPS_VAR, probeRunCgroups } from "../lib/worker/containment.ts";
import {
  cli,
  cliOk,
  drain,
  enqueueIn,
  exitWithin,
  killProcess,
  MAIN,
  processExists,
  readIfExists,
  showJob,
  startWorker,
  waitFor,
  watchProcess,
  withQueue,
  type WorkerProcess,
} from "./helpers.ts";

const LINUX = Deno.build.os === "linux";
const HAS_PYTHON = LINUX && programRuns("python3", ["-c", ""]);

function programRuns(program: string, args: string[]): boolean {
  try {
    return new Deno.Command(program, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false; // Not installed.
  }
}

/** Whether worker processes started from here can give each run a cgroup. */
function cgroupsUsable(): boolean {
  if (!LINUX) return false;
  const probe = probeRunCgroups();
  return probe.folder !== null;
}
const CGROUPS = cgroupsUsable();

/** A number for `sleep` that nothing else on the machine uses: leftovers are found by it. */
let nextMark = 200_000 + Math.floor(Math.random() * 700_000) * 10;
function mark(): number {
  return nextMark++;
}

/** The arguments of every live process, by pid. */
function commandLines(): Map<number, string[]> {
  const lines = new Map<number, string[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
      if (args.at(-1) === "") args.pop();
      if (args.length > 0 && processExists(pid)) lines.set(pid, args);
    } catch {
      // Gone meanwhile.
    }
  }
  return lines;
}

/** The live processes whose own program carries `marker` (not the shells whose command line names it). */
function marked(marker: number): number[] {
  const pids: number[] = [];
  for (const [pid, args] of commandLines()) {
    const program = args[0].split("/").at(-1);
    if (program === "sleep" && args[1] === String(marker)) pids.push(pid);
    if (program?.startsWith("python") && args.at(-1)?.includes(`sleep(${marker})`)) pids.push(pid);
  }
  return pids;
}

/** The live processes whose arguments name `marker` anywhere (the job's shell too). */
function naming(marker: number): number[] {
  return [...commandLines()].filter(([, args]) => args.some((a) => a.includes(String(marker))))
    .map(([pid]) => pid);
}

/** Kills whatever a failed test left. */
function killLeftovers(markers: number[]): void {
  for (const marker of markers) {
    for (const pid of naming(marker)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
  }
}

/** The cgroup v2 path of process `pid` (the `0::` line of /proc/PID/cgroup). */
function cgroupOf(pid: number): string {
  const text = Deno.readTextFileSync(`/proc/${pid}/cgroup`);
  return text.split("\n").find((line) => line.startsWith("0::"))?.slice(3) ?? "";
}

/** Removes a cgroup made for a test and the cgroups below it; whether it is gone. */
function removeCgroupTree(folder: string): boolean {
  try {
    for (const entry of Deno.readDirSync(folder)) {
      if (entry.isDirectory) removeCgroupTree(`${folder}/${entry.name}`);
    }
    Deno.removeSync(folder);
    return true;
  } catch (error) {
    return error instanceof Deno.errors.NotFound;
  }
}

/** The ways a run's processes try to outlive it, each with its marker. */
interface Escapes {
  /** `setsid sleep N &`: a session and process group of its own. */
  setsid: number;
  /** python3 calling os.setpgrp(): a process group of its own (0 when python3 is missing). */
  setpgrp: number;
  /** `env -i sleep N &`: no QUEUECTL_RUN_ID, still the shell's child. */
  envCleared: number;
  /**
   * `setsid env -i sleep N &`: its own session and no QUEUECTL_RUN_ID; only
   * its parent, the shell, tells that it is the run's (until the shell dies).
   */
  sessionEnvCleared: number;
  /** `(setsid env -i sleep N &)`: its own session, no QUEUECTL_RUN_ID, and its parent gone. */
  daemon: number;
}

/**
 * A shell fragment that starts the escapes: the daemonized, env-cleared one
 * only with cgroups (nothing else can tell it belongs to the run).
 */
function escapes(withCgroups: boolean): { script: string; marks: Escapes } {
  const marks: Escapes = {
    setsid: mark(),
    setpgrp: HAS_PYTHON ? mark() : 0,
    envCleared: mark(),
    sessionEnvCleared: mark(),
    daemon: withCgroups ? mark() : 0,
  };
  const parts = [
    `setsid sleep ${marks.setsid} &`,
    `env -i sleep ${marks.envCleared} &`,
    `setsid env -i sleep ${marks.sessionEnvCleared} &`,
  ];
  if (marks.setpgrp !== 0) {
    parts.push(
      `python3 -c 'import os,time; os.setpgrp(); time.sleep(${marks.setpgrp})' &`,
    );
  }
  if (marks.daemon !== 0) parts.push(`(setsid env -i sleep ${marks.daemon} &);`);
  return { script: parts.join(" "), marks };
}

function markList(marks: Escapes): number[] {
  return Object.values(marks).filter((m) => m !== 0);
}

/** Waits until every escape runs, and checks where it runs: in the run's cgroup, or not. */
async function waitForEscapes(marks: Escapes, withCgroups: boolean): Promise<void> {
  for (const marker of markList(marks)) {
    const [pid] = await waitFor(`the process marked ${marker}`, () => {
      const pids = marked(marker);
      return pids.length > 0 ? pids : undefined;
    });
    const cgroup = cgroupOf(pid);
    if (withCgroups) assert.match(cgroup, /\/queuectl\/[0-9a-f-]{36}$/, `${marker} in ${cgroup}`);
    else assert.doesNotMatch(cgroup, /\/queuectl\//, `${marker} in ${cgroup}`);
  }
}

/** Asserts that no process of the markers is left (allowing a moment for SIGKILLed ones to go). */
async function assertAllGone(marks: number[], what: string): Promise<void> {
  try {
    await waitFor(`${what}: every escaped process gone`, () => {
      return marks.every((marker) => naming(marker).length === 0);
    }, { timeoutMs: 5_000 });
  } catch {
    const left = marks.flatMap((marker) =>
      naming(marker).map((pid) => `${pid}: ${commandLines().get(pid)?.join(" ")}`)
    );
    assert.fail(`${what}: processes left:\n${left.join("\n")}`);
  }
}

function workerEnv(withCgroups: boolean): Record<string, string> {
  return withCgroups ? {} : { [NO_CGROUPS_VAR]: "1" };
}

const variants = [
  { withCgroups: true, how: " (per-run cgroup)", ignore: !CGROUPS },
  { withCgroups: false, how: " (no cgroup: QUEUECTL_NO_CGROUPS=1)", ignore: !LINUX },
];

for (const { withCgroups, how, ignore } of variants) {
  Deno.test({
    name: `a timeout ends the processes that left the run's group or session${how}`,
    ignore,
    fn: () =>
      withQueue(async ({ dir, db }) => {
        const { script, marks } = escapes(withCgroups);
        const id = await enqueueIn(
          dir,
          db,
          `${script} sleep 30`,
          "--timeout",
          "1s",
          "--max-retries",
          "0",
        );
        const worker = startWorker(db, ["--drain"], { env: workerEnv(withCgroups) });
        try {
          await waitForEscapes(marks, withCgroups);
          assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
          const job = await showJob(db, id);
          assert.equal(job.state, "dead");
          assert.match(job.last_error ?? "", /timed out/);
          await assertAllGone(markList(marks), "after the timeout");
        } finally {
          killProcess(worker);
          killLeftovers(markList(marks));
        }
      }),
  });

  Deno.test({
    name: `a timeout sends SIGTERM before SIGKILL to processes outside the run's group${how}`,
    ignore,
    fn: () =>
      withQueue(async ({ dir, db }) => {
        const marker = mark();
        // Its own session; on SIGTERM it records the signal, then exits.
        const escaper = `trap 'echo TERM >> terms; exit 0' TERM; ` +
          `sleep ${marker} & echo ready > ready; wait; echo woke >> terms`;
        await enqueueIn(
          dir,
          db,
          `setsid sh -c "${escaper}" & sleep 30`,
          "--timeout",
          "1s",
          "--max-retries",
          "0",
        );
        const worker = startWorker(db, ["--drain"], { env: workerEnv(withCgroups) });
        try {
          await waitFor("the escaper", async () => (await readIfExists(`${dir}/ready`)) !== "");
          assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
          assert.equal(await readIfExists(`${dir}/terms`), "TERM\n");
          await assertAllGone([marker], "after the timeout");
        } finally {
          killProcess(worker);
          killLeftovers([marker]);
        }
      }),
  });

  Deno.test({
    name: `a retried timeout does not leave one escaped process per attempt${how}`,
    ignore,
    fn: () =>
      withQueue(async ({ dir, db }) => {
        const marker = mark();
        await cliOk(["config", "set", "backoff-base", "1"], { db });
        const id = await enqueueIn(
          dir,
          db,
          `echo $QUEUECTL_ATTEMPT >> attempts; setsid sleep ${marker} & sleep 30`,
          "--timeout",
          "1s",
          "--max-retries",
          "2",
        );
        const worker = startWorker(db, ["--drain"], { env: workerEnv(withCgroups) });
        try {
          // Each attempt's escape is gone before the next attempt starts.
          let exited = false;
          const exit = exitWithin(worker, 30_000).finally(() => exited = true);
          let most = 0;
          while (!exited) {
            most = Math.max(most, marked(marker).length);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          assert.equal(await exit, 0, worker.stderr());
          assert.equal((await readIfExists(`${dir}/attempts`)).trim(), "1\n2\n3");
          assert.equal((await showJob(db, id)).state, "dead");
          assert.equal(most, 1, "escaped processes of two attempts ran at once");
          await assertAllGone([marker], "after the last attempt");
        } finally {
          killProcess(worker);
          killLeftovers([marker]);
        }
      }),
  });

  Deno.test({
    name: `queuectl kill ends the processes that left the run's group or session${how}`,
    ignore,
    fn: () =>
      withQueue(async ({ dir, db }) => {
        const { script, marks } = escapes(withCgroups);
        const id = await enqueueIn(dir, db, `${script} sleep 300`, "--max-retries", "0");
        const worker = startWorker(db, [], { env: workerEnv(withCgroups) });
        try {
          await waitForEscapes(marks, withCgroups);
          const killed = await cli(["kill", id], { db });
          assert.equal(killed.code, 0, killed.stderr);
          assert.equal((await showJob(db, id)).state, "dead");
          await assertAllGone(markList(marks), "after queuectl kill");
          worker.signal("SIGTERM");
          assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
        } finally {
          killProcess(worker);
          killLeftovers(markList(marks));
        }
      }),
  });

  Deno.test({
    name: `a forced shutdown ends the processes that left the run's group or session${how}`,
    ignore,
    fn: () =>
      withQueue(async ({ dir, db }) => {
        const { script, marks } = escapes(withCgroups);
        const id = await enqueueIn(dir, db, `${script} sleep 300`);
        const worker = startWorker(db, [], { env: workerEnv(withCgroups) });
        try {
          await waitForEscapes(marks, withCgroups);
          worker.signal("SIGTERM");
          await waitFor("the worker to start stopping", () => /stopping/.test(worker.stdout()));
          worker.signal("SIGTERM");
          assert.equal(await exitWithin(worker, 20_000), 143, worker.stderr());
          const job = await showJob(db, id);
          assert.equal(job.state, "pending", "the killed job went back");
          await assertAllGone(markList(marks), "after the forced shutdown");
        } finally {
          killProcess(worker);
          killLeftovers(markList(marks));
        }
      }),
  });

  Deno.test({
    name: `recovery from a SIGKILLed worker ends every process of the lost run${how}`,
    ignore,
    fn: () =>
      withQueue(async ({ dir, db }) => {
        const { script, marks } = escapes(withCgroups);
        const id = await enqueueIn(dir, db, `${script} sleep 300`, "--max-retries", "0");
        const crashed = startWorker(db, [], { env: workerEnv(withCgroups) });
        try {
          await waitForEscapes(marks, withCgroups);
          crashed.signal("SIGKILL");
          await crashed.exit();
          assert.ok(marked(marks.setsid).length > 0, "the lost run outlives its worker");
          await drain(db);
          const job = await showJob(db, id);
          assert.equal(job.state, "dead");
          assert.match(job.last_error ?? "", /worker lost/);
          await assertAllGone(markList(marks), "after recovery");
        } finally {
          killProcess(crashed);
          killLeftovers(markList(marks));
        }
      }),
  });
}

Deno.test({
  name: "a run that exits leaving processes behind has them ended (per-run cgroup)",
  ignore: !CGROUPS,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      const { script, marks } = escapes(true);
      const id = await enqueueIn(dir, db, `${script} echo started > started; sleep 1; echo ok`);
      const worker = startWorker(db, ["--drain"]);
      try {
        await waitForEscapes(marks, true);
        assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
        const job = await showJob(db, id);
        assert.equal(job.state, "completed", "the job's own outcome is kept");
        assert.equal(await cliOk(["logs", id], { db }), "ok\n");
        await assertAllGone(markList(marks), "after the run exited");
      } finally {
        killProcess(worker);
        killLeftovers(markList(marks));
      }
    }),
});

Deno.test({
  name: "a run that exits leaving children in its group has them ended (no cgroup)",
  ignore: !LINUX,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      const child = mark();
      const id = await enqueueIn(dir, db, `sleep ${child} & echo started > started; sleep 1`);
      const worker = startWorker(db, ["--drain"], { env: workerEnv(false) });
      try {
        await waitFor("the child", () => marked(child).length > 0);
        assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
        assert.equal((await showJob(db, id)).state, "completed");
        await assertAllGone([child], "after the run exited");
      } finally {
        killProcess(worker);
        killLeftovers([child]);
      }
    }),
});

Deno.test({
  name: "a run's cgroup is removed when the run ends",
  ignore: !CGROUPS,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      const child = mark();
      await enqueueIn(
        dir,
        db,
        `setsid sleep ${child} & sleep 300`,
        "--timeout",
        "1s",
        "--max-retries",
        "0",
      );
      const worker = startWorker(db, ["--drain"]);
      try {
        const [pid] = await waitFor("the child", () => {
          const pids = marked(child);
          return pids.length > 0 ? pids : undefined;
        });
        const folder = `${probeRunCgroups().folder}/${cgroupOf(pid).split("/").at(-1)}`;
        assert.ok(Deno.statSync(folder).isDirectory, `${folder} exists while the run goes on`);
        assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
        assert.throws(() => Deno.statSync(folder), Deno.errors.NotFound, `${folder} is left`);
      } finally {
        killProcess(worker);
        killLeftovers([child]);
      }
    }),
});

Deno.test({
  name: "a probe cgroup left by a worker killed while it started does not cost later runs theirs",
  ignore: !CGROUPS,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      // A worker SIGKILLed while it checks for cgroups leaves its probe, named by its pid.
      // Pids are reused: the next worker with that pid must not run without cgroups. The
      // shell makes the probe of its own pid, then becomes the worker (exec keeps the pid).
      // Probes of processes that are gone are cleared too, so that none piles up.
      const folder = probeRunCgroups().folder!;
      const ended = new Deno.Command("true").spawn();
      await ended.status;
      const goneProbe = `${folder}/probe-${ended.pid}`;
      try {
        Deno.mkdirSync(goneProbe);
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      const id = await enqueueIn(dir, db, "cat /proc/self/cgroup > cgroup.txt");
      const worker = watchProcess(
        new Deno.Command("sh", {
          args: [
            "-c",
            'mkdir "$1/probe-$$" && shift && exec "$@"',
            "sh",
            folder,
            Deno.execPath(),
            "run",
            "-A",
            MAIN,
            "--db",
            db,
            "worker",
            "start",
            "--drain",
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn(),
      );
      try {
        assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
        assert.equal((await showJob(db, id)).state, "completed");
        assert.match(await readIfExists(`${dir}/cgroup.txt`), /\/queuectl\/[0-9a-f-]{36}\n/);
        for (const probe of [`${folder}/probe-${worker.pid}`, goneProbe]) {
          assert.throws(() => Deno.statSync(probe), Deno.errors.NotFound, `${probe} is left`);
        }
      } finally {
        killProcess(worker);
        removeCgroupTree(`${folder}/probe-${worker.pid}`);
        removeCgroupTree(goneProbe);
      }
    }),
});

Deno.test({
  name: "a worker in another cgroup finds a lost run's cgroup through the run's marked processes",
  ignore: !CGROUPS,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      // The lost worker runs in a cgroup of its own, beside the one this test (and the
      // recovering worker) runs in: its runs' cgroups are not where the rescuer looks first.
      const own = probeRunCgroups().folder!.replace(/\/queuectl$/, "");
      const elsewhere = `${own}/queuectl-test-${crypto.randomUUID()}`;
      Deno.mkdirSync(elsewhere);
      const daemon = mark();
      const id = await enqueueIn(
        dir,
        db,
        `(setsid env -i sleep ${daemon} &); sleep 300`,
        "--max-retries",
        "0",
      );
      const lost = new Deno.Command("sh", {
        args: [
          "-c",
          'echo $$ > "$1/cgroup.procs" && shift && exec "$@"',
          "sh",
          elsewhere,
          Deno.execPath(),
          "run",
          "-A",
          MAIN,
          "--db",
          db,
          "worker",
          "start",
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        const [pid] = await waitFor("the daemon", () => {
          const pids = marked(daemon);
          return pids.length > 0 ? pids : undefined;
        });
        assert.match(cgroupOf(pid), /\/queuectl-test-[0-9a-f-]+\/queuectl\/[0-9a-f-]{36}$/);
        lost.kill("SIGKILL");
        await lost.status;
        await drain(db);
        assert.equal((await showJob(db, id)).state, "dead");
        await assertAllGone([daemon], "after recovery from another cgroup");
        assert.deepEqual(
          [...Deno.readDirSync(`${elsewhere}/queuectl`)].filter((e) => e.isDirectory),
          [],
          "the lost run's cgroup is removed",
        );
      } finally {
        try {
          lost.kill("SIGKILL");
        } catch {
          // Exited.
        }
        await lost.status;
        killLeftovers([daemon]);
        // Whatever of the lost worker's is left (its job's shell, after a failure).
        Deno.writeTextFileSync(`${elsewhere}/cgroup.kill`, "1");
        await waitFor(`${elsewhere} removed`, () => removeCgroupTree(elsewhere), {
          timeoutMs: 5_000,
        }).catch(() => {});
      }
    }),
});

Deno.test({
  name: "recovery in one database leaves alone a run of another database whose job has the same id",
  ignore: !LINUX,
  fn: async () => {
    const marker = mark();
    await withQueue(({ dir: dirA, db: dbA }) =>
      withQueue(async ({ dir: dirB, db: dbB }) => {
        const command = `echo $$ > run.pid; sleep ${marker}`;
        await enqueueIn(dirA, dbA, command, "--id", "backup", "--max-retries", "0");
        await enqueueIn(dirB, dbB, command, "--id", "backup", "--max-retries", "0");
        const workers: WorkerProcess[] = [];
        try {
          const lost = startWorker(dbA);
          workers.push(lost);
          const healthy = startWorker(dbB);
          workers.push(healthy);
          const pidOf = async (dir: string) =>
            Number(
              await waitFor(`${dir}/run.pid`, async () => {
                const text = await readIfExists(`${dir}/run.pid`);
                return text.endsWith("\n") ? text.trim() : "";
              }),
            );
          const shellA = await pidOf(dirA);
          const shellB = await pidOf(dirB);
          assert.equal((await showJob(dbA, "backup")).attempts, 1);
          assert.equal((await showJob(dbB, "backup")).attempts, 1);

          lost.signal("SIGKILL");
          await lost.exit();
          await drain(dbA);
          assert.equal((await showJob(dbA, "backup")).state, "dead");
          assert.ok(!processExists(shellA), "the lost run was ended");

          assert.ok(processExists(shellB), "the other database's run was killed");
          const other = await showJob(dbB, "backup");
          assert.equal(other.state, "processing", other.last_error ?? "");
          assert.equal(other.attempts, 1);

          const killed = await cli(["kill", "backup"], { db: dbB });
          assert.equal(killed.code, 0, killed.stderr);
          healthy.signal("SIGTERM");
          assert.equal(await exitWithin(healthy, 20_000), 0, healthy.stderr());
        } finally {
          for (const worker of workers) killProcess(worker);
          killLeftovers([marker]);
        }
      })
    );
  },
});
