/**
 * The two launch paths of lib/worker/executor.ts: posix_spawn through libc
 * (lib/worker/libc_spawn.ts), used on Linux with glibc, and Deno.Command,
 * used elsewhere and with `QUEUECTL_LAUNCH=command`. The executor's test
 * files run on the automatic choice in the suite itself; here they run
 * again, as they are, on Deno.Command, so that both paths pass the same tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startCommand } from "../lib/worker/executor.ts";
import { BLOCKING_WAIT_MS } from "../lib/worker/job_runner.ts";
import { LAUNCH_VAR, libcSpawner, type SpawnedShell } from "../lib/worker/libc_spawn.ts";

/** Whether this host has glibc: then the fast path must be the one chosen. */
const GLIBC = Deno.build.os === "linux" && (() => {
  try {
    return new Deno.Command("getconf", { args: ["GNU_LIBC_VERSION"] }).outputSync().success;
  } catch {
    return false;
  }
})();

/** Which launcher a fresh process picks with `env`, or why it has none. */
async function launcherWith(env: Record<string, string>): Promise<string> {
  const module = new URL("../lib/worker/libc_spawn.ts", import.meta.url).href;
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { libcSpawner } from "${module}"; ` +
      `const { spawner, problem } = libcSpawner(); console.log(spawner ? "spawn" : problem);`,
    ],
    env,
    stdin: "null",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout).trim();
}

Deno.test({
  name: "launch: on Linux with glibc jobs start through posix_spawn unless QUEUECTL_LAUNCH=command",
  ignore: !GLIBC,
  fn: async () => {
    assert.equal(await launcherWith({}), "spawn");
    assert.equal(await launcherWith({ [LAUNCH_VAR]: "spawn" }), "spawn");
    assert.equal(await launcherWith({ [LAUNCH_VAR]: "command" }), `${LAUNCH_VAR}=command`);
  },
});

/**
 * Runs one job through the executor in a process without FFI permission
 * (every other permission granted), with `env`; returns what it printed:
 * the job's stdout, or its start error.
 */
async function runWithoutFfi(env: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-launch-" });
  try {
    const executor = new URL("../lib/worker/executor.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/run.ts`,
      `import { startCommand } from "${executor}";
       const result = await startCommand({
         command: "echo ran in $(cut -d' ' -f6 /proc/$$/stat) of $$",
         cwd: ${JSON.stringify(dir)}, env: {}, timeoutMs: null,
       }).done;
       console.log(result.startError ?? new TextDecoder().decode(result.stdout).trim());`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-run",
        "--allow-sys",
        `${dir}/run.ts`,
      ],
      env,
      stdin: "null",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    return new TextDecoder().decode(output.stdout).trim();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "launch: without FFI permission jobs start through Deno.Command, in a session of their own",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const line = await runWithoutFfi({});
    const [, session, shell] = line.match(/^ran in (\d+) of (\d+)$/) ?? [];
    assert.ok(session !== undefined, line);
    assert.equal(session, shell, "the shell leads its own session");
  },
});

Deno.test({
  name:
    "launch: QUEUECTL_LAUNCH=spawn where the fast path is unavailable fails each job, saying why",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const line = await runWithoutFfi({ [LAUNCH_VAR]: "spawn" });
    assert.match(line, /^QUEUECTL_LAUNCH=spawn, but cannot load glibc: Requires ffi access/);
  },
});

Deno.test({
  name: "launch: each posix_spawn'd shell gets exactly the environment it was given, run after run",
  ignore: !GLIBC,
  fn: async () => {
    // The spawner keeps each variable's encoded form for the next runs: a
    // changed, dropped or restored value must reach the next shell as given.
    const { spawner, problem } = libcSpawner();
    assert.ok(spawner, problem ?? undefined);
    const environments: Record<string, string>[] = [
      { SAME: "kept", CHANGING: "first", DROPPED: "here" },
      { SAME: "kept", CHANGING: "second" },
      { SAME: "kept", CHANGING: "first", DROPPED: "back" },
      { CHANGING: "" },
    ];
    const seen: string[] = [];
    for (const env of environments) {
      const chunks: Uint8Array[] = [];
      const shell = spawner.spawn({
        program: "/bin/sh",
        args: ["-c", 'printf "%s|%s|%s|%s" "${SAME-unset}" "$CHANGING" "${DROPPED-unset}" "$#"'],
        cwd: "/",
        env,
        onStdout: (chunk) => chunks.push(chunk),
        onStderr: () => {},
      });
      assert.equal((await shell.status).code, 0);
      await shell.reading;
      seen.push(chunks.map((chunk) => new TextDecoder().decode(chunk)).join(""));
    }
    assert.deepEqual(seen, [
      "kept|first|here|0",
      "kept|second|unset|0",
      "kept|first|back|0",
      "unset||unset|0",
    ]);
  },
});

Deno.test({
  name:
    "launch: a shell waited on in the spawning thread at first gives all its output and its status, within the window and past it",
  ignore: !GLIBC,
  fn: async () => {
    const { spawner, problem } = libcSpawner();
    assert.ok(spawner, problem ?? undefined);
    const scripts = [
      // Ends within the window: its whole wait happens in this thread, so a
      // timer due at once has not run when its status is known.
      "printf quick; sleep 0.05; printf oops >&2; exit 3",
      // Outlives it: the wait moves to the thread pool, timers run, and nothing is lost.
      "printf a; sleep 0.8; printf b; sleep 0.1; printf c >&2",
    ];
    const text = (chunks: Uint8Array[]) =>
      chunks.map((chunk) => new TextDecoder().decode(chunk)).join("");
    const seen = [];
    for (const script of scripts) {
      const stdout: Uint8Array[] = [];
      const stderr: Uint8Array[] = [];
      let timerRan = false;
      setTimeout(() => timerRan = true, 0);
      const shell: SpawnedShell = spawner.spawn({
        program: "/bin/sh",
        args: ["-c", script],
        cwd: "/",
        env: {},
        onStdout: (chunk) => stdout.push(chunk),
        onStderr: (chunk) => stderr.push(chunk),
        blockingWaitMs: 500,
      });
      const { code } = await shell.status;
      const timerRanBeforeExitKnown = timerRan;
      await shell.reading;
      seen.push({ code, out: text(stdout), err: text(stderr), timerRanBeforeExitKnown });
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    assert.deepEqual(seen, [
      { code: 3, out: "quick", err: "oops", timerRanBeforeExitKnown: false },
      { code: 0, out: "ab", err: "c", timerRanBeforeExitKnown: true },
    ]);
  },
});

Deno.test({
  name:
    "launch: a timeout or a terminate that comes during the window still ends the run, once the window is over",
  ignore: !GLIBC,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "queuectl-window-" });
    try {
      const spec = {
        command: "sleep 30",
        cwd: dir,
        env: {},
        statusFile: `${dir}/status`,
        runId: crypto.randomUUID(),
        blockingWaitMs: BLOCKING_WAIT_MS,
      };
      const started = performance.now();
      const timedOut = await startCommand({ ...spec, timeoutMs: 3 }).done;
      const timeoutMs = performance.now() - started;
      const run = startCommand({ ...spec, timeoutMs: null });
      run.terminate();
      const terminated = await run.done;
      assert.deepEqual(
        [timedOut.timedOut, timedOut.signal, terminated.timedOut, terminated.signal],
        [true, "SIGTERM", false, "SIGTERM"],
      );
      // `sleep 30` ended by the timeout, not by itself: generous for a busy machine.
      assert.ok(timeoutMs < 10_000, `the timeout took ${timeoutMs} ms`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** The test files that run jobs through the real executor. */
const EXECUTOR_FILES = [
  "worker_run_test.ts",
  "worker_retry_test.ts",
  "worker_concurrency_test.ts",
  "worker_containment_test.ts",
  "worker_shutdown_test.ts",
  "worker_recovery_test.ts",
  "worker_detach_test.ts",
  "worker_runs_folder_test.ts",
  "hostile_input_test.ts",
  "cli_follow_test.ts",
];

Deno.test({
  name: "launch: the executor's test files pass on Deno.Command too (QUEUECTL_LAUNCH=command)",
  ignore: !GLIBC,
  fn: async () => {
    const dir = new URL(".", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--parallel", ...EXECUTOR_FILES],
      cwd: dir,
      env: { [LAUNCH_VAR]: "command", NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    const summary = text.match(/^(ok|FAILED) \| (\d+) passed.*$/m)?.[0] ?? "(no summary)";
    assert.ok(output.success, `${summary}\n${text.slice(-4000)}`);
    console.log(`  on Deno.Command: ${summary}`);
  },
});
