/**
 * Running jobs with real `worker start` processes: --drain and --once, the
 * job's environment and directory, the kinds of failure, captured output,
 * timeouts that take down a whole process tree, and the order jobs run in.
 */

import assert from "node:assert/strict";
import { findExecutable } from "../lib/worker/executor.ts";
import {
  cli,
  cliOk,
  drain,
  enqueueIn,
  exitWithin,
  jobCounts,
  killProcess,
  liveWorkers,
  processExists,
  readIfExists,
  readLines,
  showJob,
  startWorker,
  waitFor,
  withQueue,
} from "./helpers.ts";

/** Records the moment the command starts, in epoch ms, into `file`. */
const stamp = (file: string) => `date +%s%3N >> ${file}`;

/** Waits for the first time recorded by {@linkcode stamp} in `path`, and returns it. */
async function firstStamp(path: string): Promise<number> {
  const lines = await waitFor(`a start time in ${path}`, async () => {
    const lines = await readLines(path);
    return lines.length > 0 ? lines : undefined;
  });
  return Number(lines[0]);
}

Deno.test("drain waits for delayed and retrying jobs, then exits 0", () =>
  withQueue(async ({ dir, db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    const now = await enqueueIn(dir, db, "echo now >> ran");
    const later = await enqueueIn(dir, db, "echo later >> ran", "--delay", "1s");
    const flaky = await enqueueIn(
      dir,
      db,
      'echo "flaky $QUEUECTL_ATTEMPT" >> ran; [ "$QUEUECTL_ATTEMPT" -ge 2 ]',
      "--max-retries",
      "2",
    );
    const worker = startWorker(db, ["--count", "2", "--drain"]);
    try {
      assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    assert.deepEqual((await readLines(`${dir}/ran`)).sort(), [
      "flaky 1",
      "flaky 2",
      "later",
      "now",
    ]);
    assert.deepEqual(await jobCounts(db), {
      blocked: 0,
      pending: 0,
      processing: 0,
      completed: 3,
      failed: 0,
      dead: 0,
    });
    for (const id of [now, later, flaky]) assert.equal((await showJob(db, id)).state, "completed");
    assert.equal((await showJob(db, flaky)).attempts, 2);
  }));

Deno.test("drain on an empty queue exits 0 at once", () =>
  withQueue(async ({ db }) => {
    const worker = startWorker(db, ["--drain"]);
    try {
      assert.equal(await exitWithin(worker, 15_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    assert.deepEqual(await liveWorkers(db), []);
  }));

Deno.test("once runs exactly one job, then exits 0", () =>
  withQueue(async ({ dir, db }) => {
    const ids = [];
    for (let i = 0; i < 3; i++) {
      ids.push(await enqueueIn(dir, db, 'echo "$QUEUECTL_JOB_ID" >> ran'));
    }
    const worker = startWorker(db, ["--once"]);
    try {
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    assert.deepEqual(await readLines(`${dir}/ran`), [ids[0]]);
    assert.equal((await showJob(db, ids[0])).state, "completed");
    assert.deepEqual(await jobCounts(db), {
      blocked: 0,
      pending: 2,
      processing: 0,
      completed: 1,
      failed: 0,
      dead: 0,
    });
    assert.deepEqual(await liveWorkers(db), []);
  }));

Deno.test("jobs see their id and attempt and run in the enqueue directory or --cwd", () =>
  withQueue(async ({ dir, db }) => {
    const home = `${dir}/home`;
    const elsewhere = `${dir}/elsewhere`;
    await Deno.mkdir(home);
    await Deno.mkdir(elsewhere);
    const report = `printf '%s %s %s\\n' "$QUEUECTL_JOB_ID" "$QUEUECTL_ATTEMPT" "$(pwd)" > env.txt`;
    const inHome = await enqueueIn(home, db, report);
    const inElsewhere = await enqueueIn(home, db, report, "--cwd", elsewhere);
    assert.equal((await showJob(db, inHome)).cwd, home);
    assert.equal((await showJob(db, inElsewhere)).cwd, elsewhere);

    const worker = startWorker(db, ["--drain"]);
    try {
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    assert.equal(
      await Deno.readTextFile(`${home}/env.txt`),
      `${inHome} 1 ${await Deno.realPath(home)}\n`,
    );
    assert.equal(
      await Deno.readTextFile(`${elsewhere}/env.txt`),
      `${inElsewhere} 1 ${await Deno.realPath(elsewhere)}\n`,
    );
  }));

Deno.test("a job runs in a session of its own, SIGPIPE at its default, no signal blocked, stdin empty", () =>
  withQueue(async ({ dir, db }) => {
    // Deno ignores SIGPIPE and its children inherit that unless the launch resets it:
    // then `yes` writing into a closed pipe exits 1 with an error instead of dying of SIGPIPE.
    const id = await enqueueIn(
      dir,
      db,
      'cat > stdin.txt; (yes; echo "yes ended with $?" > pipe.txt) | head -c 1 > /dev/null; ' +
        "[ \"$(cut -d' ' -f6 /proc/$$/stat)\" = $$ ] && echo own > session.txt; " +
        // Its own mask: the shell's is briefly all blocked while it forks.
        "grep SigBlk /proc/self/status > blocked.txt",
    );
    const worker = startWorker(db, ["--drain"]);
    try {
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    assert.equal((await showJob(db, id)).state, "completed");
    assert.equal(await Deno.readTextFile(`${dir}/stdin.txt`), "");
    assert.equal(await Deno.readTextFile(`${dir}/pipe.txt`), "yes ended with 141\n");
    assert.equal(await Deno.readTextFile(`${dir}/session.txt`), "own\n");
    assert.equal(await Deno.readTextFile(`${dir}/blocked.txt`), "SigBlk:\t0000000000000000\n");
  }));

Deno.test("the event log escapes job text: no terminal control, one line per event", () =>
  withQueue(async ({ dir, db }) => {
    await enqueueIn(
      dir,
      db,
      String.raw`printf '\033]0;PWNED\007\033[2J\033[31m' >&2; exit 1`,
      "--max-retries",
      "0",
    );
    await enqueueIn(dir, db, "echo one\necho two");
    const log = await drain(db);
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(log, /[\x00-\x09\x0b-\x1f\x7f]/, "a control character reached the log");
    const lines = log.trimEnd().split("\n");
    for (const line of lines) assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z /, line);
    assert.ok(lines.some((line) => /failed .*\?\]0;PWNED\?\?\[2J\?\[31m/.test(line)), log);
    assert.ok(
      lines.some((line) =>
        line.endsWith(String.raw`started (attempt 1 of 4, worker 1): echo one\necho two`)
      ),
      log,
    );
  }));

Deno.test("a non-zero exit, a missing command, a kill and a timeout all fail the job", () =>
  withQueue(async ({ dir, db }) => {
    const noRetry = ["--max-retries", "0"];
    const ok = await enqueueIn(dir, db, "echo fine", ...noRetry);
    const exit3 = await enqueueIn(dir, db, "echo bad >&2; exit 3", ...noRetry);
    const missing = await enqueueIn(dir, db, "no-such-command-queuectl-test", ...noRetry);
    const killed = await enqueueIn(dir, db, "kill -9 $$", ...noRetry);
    const slow = await enqueueIn(dir, db, "sleep 30", "--timeout", "1s", ...noRetry);

    const worker = startWorker(db, ["--count", "3", "--drain"]);
    try {
      assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }

    const success = await showJob(db, ok);
    assert.equal(success.state, "completed");
    assert.equal(success.exit_code, 0);
    assert.equal(success.last_error, null);

    const failed = await showJob(db, exit3);
    assert.equal(failed.state, "dead");
    assert.equal(failed.attempts, 1);
    assert.equal(failed.exit_code, 3);
    assert.match(failed.last_error ?? "", /\b3\b/);

    const notFound = await showJob(db, missing);
    assert.equal(notFound.state, "dead");
    assert.equal(notFound.exit_code, 127);
    assert.match(notFound.last_error ?? "", /127/);

    const signalled = await showJob(db, killed);
    assert.equal(signalled.state, "dead");
    assert.notEqual(signalled.exit_code, 0);
    assert.match(signalled.last_error ?? "", /SIGKILL|137/);

    const timedOut = await showJob(db, slow);
    assert.equal(timedOut.state, "dead");
    assert.equal(timedOut.timeout_ms, 1000);
    assert.match(timedOut.last_error ?? "", /timed out/i);
    const ranMs = Date.parse(timedOut.finished_at!) - Date.parse(timedOut.started_at!);
    assert.ok(ranMs >= 1000 && ranMs < 10_000, `the timed-out job ran ${ranMs} ms`);
  }));

Deno.test("logs shows the latest attempt's output, and only the last 64 KiB of a large one", () =>
  withQueue(async ({ dir, db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    const retried = await enqueueIn(
      dir,
      db,
      'echo "out $QUEUECTL_ATTEMPT"; echo "err $QUEUECTL_ATTEMPT" >&2; [ "$QUEUECTL_ATTEMPT" -ge 2 ]',
      "--max-retries",
      "1",
    );
    const large = await enqueueIn(dir, db, "seq 1 100000");

    const worker = startWorker(db, ["--count", "2", "--drain"]);
    try {
      assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }

    assert.equal((await showJob(db, retried)).state, "completed");
    const latest = await cli(["logs", retried], { db });
    assert.equal(latest.code, 0);
    assert.equal(latest.stdout, "out 2\n");
    assert.match(latest.stderr, /^err 2$/m);
    assert.doesNotMatch(latest.stderr, /err 1/);

    let all = "";
    for (let n = 1; n <= 100_000; n++) all += `${n}\n`;
    const bytes = new TextEncoder().encode(all);
    const tail = new TextDecoder().decode(bytes.subarray(bytes.length - 64 * 1024));
    const logs = await cli(["logs", large], { db });
    assert.equal(logs.code, 0);
    assert.equal(logs.stdout.length, 64 * 1024);
    assert.equal(logs.stdout, tail);
  }));

/** A field of /proc/<pid>/status in bytes (VmRSS: resident now; VmHWM: the peak); 0 when gone. */
function memoryOf(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const MB = 1024 * 1024;

Deno.test({
  name: "a job that prints 1 GB leaves the worker's memory flat and keeps its last 64 KiB",
  ignore: Deno.build.os !== "linux",
}, () =>
  withQueue(async ({ dir, db }) => {
    // The tail is what the run must keep: 1000 MiB of zeros, then a marked end.
    const id = await enqueueIn(dir, db, "head -c 1000M /dev/zero; printf 'the end\\n'");
    const worker = startWorker(db);
    let sampledPeak = 0;
    try {
      await waitFor("the 1 GB job to finish", async () => {
        sampledPeak = Math.max(sampledPeak, memoryOf(worker.pid, "VmRSS"));
        return (await showJob(db, id)).state === "completed";
      }, { timeoutMs: 180_000, intervalMs: 100 });
      // VmHWM also catches a peak between two samples.
      const peak = Math.max(sampledPeak, memoryOf(worker.pid, "VmHWM"));
      console.log(
        `worker peak: ${(peak / MB).toFixed(0)} MB (sampled ${
          (sampledPeak / MB).toFixed(0)
        } MB) for 1000 MiB of output`,
      );
      assert.ok(sampledPeak > 0, "the worker's memory was sampled");
      assert.ok(peak < 400 * MB, `the worker grew to ${(peak / MB).toFixed(0)} MB`);
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    const logs = await cli(["logs", id], { db });
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout.length, 64 * 1024);
    assert.equal(logs.stdout, "\0".repeat(64 * 1024 - 8) + "the end\n");
  }));

/**
 * A folder holding only `sh` and `sleep`: a PATH without setsid(1), so that
 * the worker falls back to Deno's own `detached` spawn for process groups.
 */
async function pathWithoutSetsid(dir: string): Promise<string> {
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin);
  for (const tool of ["sh", "sleep"]) {
    const found = findExecutable(tool);
    assert.ok(found, `${tool} is on PATH`);
    await Deno.symlink(found, `${bin}/${tool}`);
  }
  return bin;
}

for (const withoutSetsid of [false, true]) {
  const how = withoutSetsid ? " (no setsid(1): Deno's detached spawn)" : "";
  Deno.test(`a timed-out job's children and grandchildren are killed too${how}`, () =>
    timedOutTreeIsKilled(withoutSetsid));
}

function timedOutTreeIsKilled(withoutSetsid: boolean): Promise<void> {
  return withQueue(async ({ dir, db }) => {
    // The grandchild ignores SIGTERM, so only the SIGKILL that follows it ends it.
    const id = await enqueueIn(
      dir,
      db,
      "sleep 300 & echo $! > child.pid; " +
        `sh -c 'trap "" TERM; sleep 300 & echo $! > grandchild.pid; wait'`,
      "--timeout",
      "1s",
      "--max-retries",
      "0",
    );
    const pids: number[] = [];
    const env: Record<string, string> = withoutSetsid ? { PATH: await pathWithoutSetsid(dir) } : {};
    const worker = startWorker(db, ["--drain"], { env });
    try {
      const pidOf = async (file: string) => {
        const text = await waitFor(`${file}`, async () => {
          const content = await readIfExists(`${dir}/${file}`);
          return content.endsWith("\n") ? content : "";
        });
        const pid = Number(text.trim());
        pids.push(pid);
        return pid;
      };
      const grandchild = await pidOf("grandchild.pid");
      assert.ok(processExists(grandchild), "the grandchild runs while the job does");
      const child = await pidOf("child.pid");

      assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
      const job = await showJob(db, id);
      assert.equal(job.state, "dead");
      assert.match(job.last_error ?? "", /timed out/i);
      assert.equal(processExists(child), false, `child ${child} is still running`);
      assert.equal(processExists(grandchild), false, `grandchild ${grandchild} is still running`);
    } finally {
      killProcess(worker);
      for (const pid of pids) {
        if (processExists(pid)) Deno.kill(pid, "SIGKILL");
      }
    }
  });
}

Deno.test("one worker runs higher priorities first, equal priorities in enqueue order", () =>
  withQueue(async ({ dir, db }) => {
    const jobs: [string, number][] = [["a", 0], ["b", 5], ["c", 0], ["d", 9], ["e", 5], ["f", 0]];
    for (const [name, priority] of jobs) {
      await enqueueIn(dir, db, `echo ${name} >> order`, "--priority", String(priority));
    }
    const worker = startWorker(db, ["--count", "1", "--drain"]);
    try {
      assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    assert.deepEqual(await readLines(`${dir}/order`), ["d", "b", "e", "a", "c", "f"]);
  }));

Deno.test("a delayed job does not start before its delay has passed", () =>
  withQueue(async ({ dir, db }) => {
    // Create the database first: processes opening a brand-new one at the same
    // moment can fail (see worker_concurrency_test.ts).
    await jobCounts(db);
    const worker = startWorker(db, ["--count", "1"]);
    try {
      // The worker is up and idle before the job arrives.
      await waitFor("the worker to register", async () => (await liveWorkers(db)).length === 1);
      const id = await enqueueIn(dir, db, stamp("started"), "--delay", "2s");
      const job = await showJob(db, id);
      const enqueuedAt = Date.parse(job.created_at);
      assert.equal(Date.parse(job.run_at) - enqueuedAt, 2000);

      const startedAt = await firstStamp(`${dir}/started`);
      assert.ok(
        startedAt >= enqueuedAt + 2000,
        `started ${startedAt - enqueuedAt} ms after the enqueue`,
      );
      assert.ok(
        startedAt <= enqueuedAt + 2000 + 5000,
        `started ${startedAt - enqueuedAt} ms after the enqueue`,
      );
      await waitFor(
        "the job to complete",
        async () => (await showJob(db, id)).state === "completed",
      );
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
  }));

Deno.test("an idle worker picks up a newly enqueued job promptly", () =>
  withQueue(async ({ dir, db }) => {
    // Create the database first: processes opening a brand-new one at the same
    // moment can fail (see worker_concurrency_test.ts).
    await jobCounts(db);
    const worker = startWorker(db, ["--count", "1"]);
    try {
      await waitFor("the worker to register", async () => (await liveWorkers(db)).length === 1);
      const first = await enqueueIn(dir, db, stamp("first"));
      const firstJob = await showJob(db, first);
      const firstStart = await firstStamp(`${dir}/first`);
      const firstDelay = firstStart - Date.parse(firstJob.created_at);
      assert.ok(firstDelay < 2000, `the first job started ${firstDelay} ms after its enqueue`);

      // Let the worker idle past its longest wait between claims (1 s), judged
      // by its heartbeat, before the second job arrives.
      await waitFor("the first job to complete", async () => {
        return (await showJob(db, first)).state === "completed";
      });
      const idleSince = Date.now();
      await waitFor("the worker to idle for a while", async () => {
        const [record] = await liveWorkers(db);
        return Date.parse(record.heartbeat_at) > idleSince + 1500;
      }, { intervalMs: 200 });

      const second = await enqueueIn(dir, db, stamp("second"));
      const secondJob = await showJob(db, second);
      const secondStart = await firstStamp(`${dir}/second`);
      const secondDelay = secondStart - Date.parse(secondJob.created_at);
      assert.ok(secondDelay < 2000, `the second job started ${secondDelay} ms after its enqueue`);

      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
  }));

Deno.test("a timeout longer than a timer can hold (30 days) does not fire early", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(
      dir,
      db,
      "sleep 1; echo ok",
      "--timeout",
      "30d",
      "--max-retries",
      "0",
    );
    await cliOk(["worker", "start", "--drain"], { db });
    const job = await showJob(db, id);
    assert.equal(job.state, "completed", job.last_error ?? "");
    assert.equal(job.timeout_ms, 30 * 86_400_000);
  }));
