/**
 * `worker start --detach`: the workers run on as a background process in a
 * session of their own, `status` and `worker stop` see them like any other,
 * and `--log` keeps their output.
 */

import assert from "node:assert/strict";
import {
  assertRefused,
  cli,
  cliCommandLine,
  cliOk,
  enqueue,
  liveWorkers,
  ON_POSTGRES,
  processExists,
  readIfExists,
  showJob,
  shownDb,
  waitFor,
  withQueue,
} from "./helpers.ts";

/** The session id of a process (field 6 of /proc/PID/stat). */
function sessionOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}

/** Kills a background worker left behind by a failed test. */
function cleanUp(pid: number | undefined): void {
  if (pid !== undefined && processExists(pid)) Deno.kill(pid, "SIGKILL");
}

Deno.test("--detach leaves a worker running that status shows, that runs jobs, and that worker stop ends", () =>
  withQueue(async ({ dir, db }) => {
    let pid: number | undefined;
    try {
      // Relative paths, from the test's directory: the background process must agree on them.
      // (A queue on PostgreSQL has no path: its URL is given as it is.)
      const started = await cli(
        [
          "--db",
          ON_POSTGRES ? db : "queue.db",
          "worker",
          "start",
          "--detach",
          "--log",
          "worker.log",
        ],
        { cwd: dir },
      );
      assert.equal(started.code, 0, started.stderr);
      assert.match(started.stdout, /^\d+\n$/);
      pid = Number(started.stdout);
      assert.match(
        started.stderr,
        new RegExp(`^started worker process ${pid} in the background \\(log: ${dir}/worker.log\\)`),
      );
      assert.ok(processExists(pid), "the worker runs on after the command returned");
      assert.equal(sessionOf(pid), pid, "it leads a session of its own");
      assert.equal(Deno.readLinkSync(`/proc/${pid}/fd/0`), "/dev/null");

      const workers = await liveWorkers(db);
      assert.deepEqual(workers.map((w) => [w.pid, w.threads]), [[pid, 1]]);

      const id = await enqueue(db, "echo hello from the job");
      await waitFor(
        "the job to complete",
        async () => (await showJob(db, id)).state === "completed",
      );
      const log = await waitFor("the log to record the job", async () => {
        const text = await readIfExists(`${dir}/worker.log`);
        return text.includes(`${id} succeeded`) ? text : undefined;
      });
      assert.ok(log.includes(`started 1 worker (pid ${pid}, database ${shownDb(db)})`), log);

      const stopped = await cli(["worker", "stop"], { db });
      assert.equal(stopped.code, 0, stopped.stderr);
      await waitFor("the worker process to exit", () => !processExists(pid!));
      assert.deepEqual(await liveWorkers(db), []);
      assert.match(await readIfExists(`${dir}/worker.log`), /stopped\n$/);
    } finally {
      cleanUp(pid);
    }
  }));

Deno.test("--detach passes its options on and, without --log, discards the output", () =>
  withQueue(async ({ dir, db }) => {
    let pid: number | undefined;
    try {
      const started = await cli(
        ["worker", "start", "--detach", "--count", "2", "--queue", "fast"],
        { db, cwd: dir },
      );
      assert.equal(started.code, 0, started.stderr);
      pid = Number(started.stdout);
      assert.match(started.stderr, /output discarded/);
      assert.equal(Deno.readLinkSync(`/proc/${pid}/fd/1`), "/dev/null");
      assert.deepEqual((await liveWorkers(db)).map((w) => [w.pid, w.threads]), [[pid, 2]]);

      const fast = await enqueue(db, "true", "--queue", "fast");
      const other = await enqueue(db, "true", "--queue", "slow");
      await waitFor(
        "the fast job to complete",
        async () => (await showJob(db, fast)).state === "completed",
      );
      assert.equal((await showJob(db, other)).state, "pending", "queue slow is not served");

      await cliOk(["worker", "stop"], { db });
      await waitFor("the worker process to exit", () => !processExists(pid!));
    } finally {
      cleanUp(pid);
    }
  }));

Deno.test("--log creates its file private to the owner (0600) whatever the umask; an existing one keeps its mode", () =>
  withQueue(async ({ dir, db }) => {
    let pid: number | undefined;
    try {
      await Deno.writeTextFile(`${dir}/shared.log`, "");
      await Deno.chmod(`${dir}/shared.log`, 0o640);
      for (const log of ["worker.log", "shared.log"]) {
        // Under umask 000, a file created with the default mode would be 0666.
        const line = `umask 000; exec ${
          cliCommandLine(["worker", "start", "--detach", "--log", `${dir}/${log}`], db)
        }`;
        const output = await new Deno.Command("sh", { args: ["-c", line], stdin: "null" }).output();
        assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
        pid = Number(new TextDecoder().decode(output.stdout));
        await cliOk(["worker", "stop"], { db });
        await waitFor("the worker process to exit", () => !processExists(pid!));
      }
      assert.equal(Deno.statSync(`${dir}/worker.log`).mode! & 0o777, 0o600, "a new log");
      assert.equal(Deno.statSync(`${dir}/shared.log`).mode! & 0o777, 0o640, "an existing log");
      assert.match(await readIfExists(`${dir}/worker.log`), /stopped\n$/);
    } finally {
      cleanUp(pid);
    }
  }));

Deno.test("--log without --detach exits 2; a log that cannot be written exits 1, starting nothing", () =>
  withQueue(async ({ dir, db }) => {
    assertRefused(
      await cli(["worker", "start", "--log", `${dir}/w.log`], { db }),
      2,
      "--log alone",
    );
    const unwritable = await cli(["worker", "start", "--detach", "--log", dir], { db });
    assertRefused(unwritable, 1, "--log naming a folder");
    assert.match(unwritable.stderr, /--log: cannot write/);
    assertRefused(
      await cli(["worker", "start", "--detach", "--count", "0"], { db }),
      2,
      "--detach --count 0",
    );
    assert.deepEqual(await liveWorkers(db), []);
  }));

Deno.test("--detach exits 1 with the end of the log when the worker process dies at once", () =>
  withQueue(async ({ dir, db }) => {
    // A stand-in for setsid(1) that runs the log redirection it is given, but
    // in place of the worker a command that fails at once.
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(
      `${dir}/bin/setsid`,
      `#!/bin/sh\nexec "$1" "$2" "$3" "$4" "$5" sh -c 'echo "worker exploded"; exit 4'\n`,
      { mode: 0o755 },
    );
    const result = await cli(["worker", "start", "--detach", "--log", `${dir}/w.log`], {
      db,
      env: { PATH: `${dir}/bin:${Deno.env.get("PATH")}` },
    });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, "");
    assert.equal(
      result.stderr,
      `last lines of ${dir}/w.log:\nworker exploded\n` +
        "queuectl: the worker process exited (code 4) before it was seen running\n",
    );
    assert.deepEqual(await liveWorkers(db), []);
  }));
