/**
 * Job environments through the CLI (`enqueue --env`, `--env-file`, JSON
 * `env`): a job's runs see its variables on top of the worker's own, on both
 * launch paths of lib/worker/executor.ts; `show` lists them; invalid names
 * are refused with nothing stored.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LAUNCH_VAR } from "../lib/worker/libc_spawn.ts";
import { cli, cliOk, exitWithin, showJob, startWorker, withQueue } from "./helpers.ts";

/** Prints the variables the test sets, and those the worker sets, as the job sees them. */
const PRINT_ENV = 'printf "%s|" "$GREETING" "$FROM_WORKER" "$SHARED" "$QUEUECTL_JOB_ID" "$MULTI"';

for (const launch of ["spawn", "command"]) {
  Deno.test(`job env: a run sees the job's variables over the worker's (${LAUNCH_VAR}=${launch})`, async () => {
    await withQueue(async ({ db, dir }) => {
      const envFile = `${dir}/job.env`;
      await Deno.writeTextFile(envFile, '# job settings\nexport MULTI="line 1\\nline 2"\n');
      const id = (await cliOk([
        "enqueue",
        "--env",
        "GREETING=héllo wörld",
        "--env",
        "SHARED=from the job",
        "--env-file",
        envFile,
        PRINT_ENV,
      ], { db })).trim();
      const worker = startWorker(db, ["--drain"], {
        env: { [LAUNCH_VAR]: launch, FROM_WORKER: "worker", SHARED: "from the worker" },
      });
      assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
      const logs = await cliOk(["logs", id], { db });
      assert.equal(logs, `héllo wörld|worker|from the job|${id}|line 1\nline 2|`);
    });
  });
}

Deno.test("job env: show lists the variables, --json exactly; JSON env and --env merge", async () => {
  await withQueue(async ({ db }) => {
    const spec = JSON.stringify({ command: "true", env: { A: "spec", B: "spec" } });
    const id = (await cliOk(["enqueue", spec, "--env", "B=flag", "--env", "C=x=y"], { db }))
      .trim();
    assert.deepEqual((await showJob(db, id)).env, { A: "spec", B: "flag", C: "x=y" });
    const text = await cliOk(["show", id], { db });
    assert.match(text, /^env +A=spec\n +B=flag\n +C=x=y\n/m);
    const plain = (await cliOk(["enqueue", "true"], { db })).trim();
    assert.match(await cliOk(["show", plain], { db }), /^env +-$/m);
    // With --file, --env applies to every line, a line's env to its own job.
    const lines = await cliOk(["enqueue", "--file", "-", "--env", "ALL=1"], {
      db,
      stdin: 'echo one\n{"command": "echo two", "env": {"OWN": "2", "ALL": "line"}}\n',
    });
    const [one, two] = lines.trim().split("\n");
    assert.deepEqual((await showJob(db, one)).env, { ALL: "1" });
    assert.deepEqual((await showJob(db, two)).env, { OWN: "2", ALL: "1" });
  });
});

Deno.test("job env: invalid names and values are refused with one line, exit 2, nothing stored", async () => {
  await withQueue(async ({ db, dir }) => {
    await cliOk(["enqueue", "true"], { db });
    const badFile = `${dir}/bad.env`;
    await Deno.writeTextFile(badFile, "GOOD=1\n\nBAD NAME=2\n");
    const cases: [string[], string][] = [
      [["--env", "1ABC=x"], `--env: "1ABC" is not a valid variable name`],
      [["--env", "NOEQUALS"], `--env: expected NAME=VALUE, got "NOEQUALS"`],
      [["--env", "QUEUECTL_JOB_ID=x"], "--env: QUEUECTL_JOB_ID is set by the worker"],
      [["--env-file", badFile], `--env-file ${badFile} line 3: "BAD NAME" is not a valid`],
      [["--env-file", `${dir}/missing.env`], "--env-file: cannot read"],
      [[JSON.stringify({ command: "true", env: { "A=B": "x" } })], `env: "A=B" is not a valid`],
      [
        [JSON.stringify({ command: "true", env: { A: "a\u0000b" } })],
        "env: the value of A contains a NUL",
      ],
    ];
    for (const [args, message] of cases) {
      const spec = args[0].startsWith("{") ? [] : ["true"];
      const result = await cli(["enqueue", ...args, ...spec], { db });
      assert.equal(result.code, 2, `${args}: ${result.stderr}`);
      assert.ok(result.stderr.startsWith(`queuectl: ${message}`), result.stderr);
      assert.equal(result.stderr.split("\n").length, 2, result.stderr);
      assert.equal(result.stdout, "");
    }
    assert.equal(JSON.parse(await cliOk(["status", "--json"], { db })).jobs.pending, 1);
  });
});
