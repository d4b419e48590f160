/**
 * The runs folder (lib/worker/runs_folder.ts): where exit-status files and
 * wake sockets live, per user and per database: under `XDG_RUNTIME_DIR` when
 * it is set, else beside the database; kept private; and the same for every
 * worker of a database, or said when it is not.
 *
 * @module
 */

import assert from "node:assert/strict";
import { prepareRunsFolder, runsFolderOf, wakeSocketPath } from "../lib/worker/runs_folder.ts";
import {
  cliOk,
  exitWithin,
  killProcess,
  liveWorkers,
  pathExists,
  processExists,
  readIfExists,
  runsFolder,
  showJob,
  startWorker,
  waitFor,
  withQueue,
} from "./helpers.ts";

/** An environment holding only `XDG_RUNTIME_DIR`, set to `value` (undefined: unset). */
function runtimeEnv(value: string | undefined) {
  return (name: string) => name === "XDG_RUNTIME_DIR" ? value : undefined;
}

/** Makes a private folder to serve as XDG_RUNTIME_DIR, as systemd makes /run/user/<uid>. */
function makeRuntimeDir(dir: string): string {
  const runtime = `${dir}/runtime`;
  Deno.mkdirSync(runtime, { mode: 0o700 });
  return runtime;
}

function mode(path: string): number {
  return (Deno.statSync(path).mode ?? 0) & 0o777;
}

Deno.test("runsFolderOf() is beside the database's real path when XDG_RUNTIME_DIR is unset, empty or relative", () =>
  withQueue(async ({ dir }) => {
    await Deno.mkdir(`${dir}/real`);
    await Deno.symlink(`${dir}/real`, `${dir}/link`);
    const real = `${Deno.realPathSync(dir)}/real/queue.db`;
    for (const value of [undefined, "", "run/user/1000"]) {
      const env = runtimeEnv(value);
      assert.equal(
        runsFolderOf({ kind: "sqlite", path: `${dir}/real/queue.db` }, env),
        `${real}.runs`,
      );
      // Not made yet, and named through a link: the same folder still.
      assert.equal(
        runsFolderOf({ kind: "sqlite", path: `${dir}/link/queue.db` }, env),
        `${real}.runs`,
      );
    }
  }));

Deno.test("runsFolderOf() of a PostgreSQL queue: one folder per server and schema, never its password", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const url = "postgres://alice:s3cret@db.example/jobs?schema=q1";
  const underRuntime = runsFolderOf(
    { kind: "postgres", url },
    env({ XDG_RUNTIME_DIR: "/run/user/7" }),
  )!;
  assert.match(underRuntime, /^\/run\/user\/7\/queuectl\/[0-9a-f]{16}$/);
  const underState = runsFolderOf(
    { kind: "postgres", url },
    env({ XDG_STATE_HOME: "/s", HOME: "/h" }),
  );
  assert.equal(underState, `/s/queuectl/runs/${underRuntime.slice(-16)}`);
  const underHome = runsFolderOf({ kind: "postgres", url }, env({ HOME: "/h" }));
  assert.equal(underHome, `/h/.local/state/queuectl/runs/${underRuntime.slice(-16)}`);
  // The password does not name the folder: the same queue with another password is the same folder.
  const other = runsFolderOf(
    { kind: "postgres", url: "postgres://alice:other@db.example/jobs?schema=q1" },
    env({ HOME: "/h" }),
  );
  assert.equal(other, underHome);
  const otherSchema = runsFolderOf(
    { kind: "postgres", url: "postgres://alice@db.example/jobs?schema=q2" },
    env({ HOME: "/h" }),
  );
  assert.notEqual(otherSchema, underHome);
  assert.equal(runsFolderOf({ kind: "postgres", url }, env({})), null, "no home: no folder");
});

Deno.test("runsFolderOf() under XDG_RUNTIME_DIR: one short folder per database, the same through any name of it", () =>
  withQueue(async ({ dir }) => {
    const deep = `${dir}/${"d".repeat(200)}`;
    await Deno.mkdir(deep);
    await Deno.symlink(deep, `${dir}/link`);
    const env = runtimeEnv("/run/user/1000/");
    const folder = runsFolderOf({ kind: "sqlite", path: `${deep}/queue.db` }, env)!;
    assert.match(folder, /^\/run\/user\/1000\/queuectl\/[0-9a-f]{16}$/);
    assert.equal(runsFolderOf({ kind: "sqlite", path: `${dir}/link/queue.db` }, env), folder);
    assert.notEqual(runsFolderOf({ kind: "sqlite", path: `${deep}/other.db` }, env), folder);
    // A socket's path must fit in 108 bytes with its NUL; beside this database it would not.
    const worker = { pid: 4_194_304, startedAt: Date.parse("2100-01-01T00:00:00Z") };
    assert.ok(new TextEncoder().encode(wakeSocketPath(folder, worker)).length <= 107);
    assert.ok(wakeSocketPath(runsFolder(`${deep}/queue.db`), worker).length > 107);
  }));

Deno.test("prepareRunsFolder() under XDG_RUNTIME_DIR makes queuectl/ and the folder private", () =>
  withQueue(async ({ dir, db }) => {
    const runtime = makeRuntimeDir(dir);
    const env = runtimeEnv(runtime);
    const prepared = prepareRunsFolder({ kind: "sqlite", path: db }, env);
    assert.deepEqual(prepared, { dir: runsFolder(db, runtime) });
    assert.equal(mode(`${runtime}/queuectl`), 0o700);
    assert.equal(mode(prepared.dir!), 0o700);
    Deno.chmodSync(`${runtime}/queuectl`, 0o777);
    Deno.chmodSync(prepared.dir!, 0o755);
    assert.deepEqual(prepareRunsFolder({ kind: "sqlite", path: db }, env), prepared);
    assert.equal(mode(`${runtime}/queuectl`), 0o700, "made private again");
    assert.equal(mode(prepared.dir!), 0o700, "made private again");
    assert.equal(await pathExists(`${db}.runs`), false, "nothing beside the database");
  }));

Deno.test({
  name: "prepareRunsFolder() does not use an XDG_RUNTIME_DIR of another user",
  ignore: Deno.uid() !== 0,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      const runtime = makeRuntimeDir(dir);
      const chown = await new Deno.Command("chown", { args: ["nobody", runtime] }).output();
      assert.ok(chown.success, "chown nobody");
      const prepared = prepareRunsFolder({ kind: "sqlite", path: db }, runtimeEnv(runtime));
      assert.equal(prepared.dir, null);
      assert.match(
        (prepared as { problem: string }).problem,
        /^XDG_RUNTIME_DIR .*\/runtime belongs to another user \(uid \d+\)$/,
      );
      assert.deepEqual([...Deno.readDirSync(runtime)], [], "nothing made in it");
    }),
});

Deno.test("with XDG_RUNTIME_DIR set, a worker keeps its wake socket and exit statuses there, and recovery settles a finished run from them", () =>
  withQueue(async ({ dir, db }) => {
    const runtime = makeRuntimeDir(dir);
    const env = { XDG_RUNTIME_DIR: runtime };
    const folder = runsFolder(db, runtime);
    const id = (await cliOk(
      ["enqueue", "echo $$ > run.pid; sleep 1; echo finished > done; exit 0"],
      { db, cwd: dir, env },
    )).trim();
    const crashed = startWorker(db, [], { env });
    let orphan: number | undefined;
    try {
      orphan = Number(
        await waitFor(
          "the run to start",
          async () => (await readIfExists(`${dir}/run.pid`)).trim(),
        ),
      );
      const [record] = await liveWorkers(db);
      const socket = wakeSocketPath(folder, {
        pid: record.pid,
        startedAt: Date.parse(record.started_at),
      });
      assert.ok(Deno.statSync(socket).isSocket, `no wake socket at ${socket}`);
      assert.equal(await pathExists(`${db}.runs`), false, "a runs folder beside the database");
      crashed.signal("SIGKILL");
      await crashed.exit();
      await waitFor(
        "the orphaned run to finish",
        async () => (await readIfExists(`${dir}/done`)) !== "",
      );
      await waitFor("its shell to exit", () => !processExists(orphan!));
      const statuses = [...Deno.readDirSync(folder)].filter((entry) =>
        !entry.name.endsWith(".wake")
      );
      assert.equal(statuses.length, 1, "one exit-status file");
      assert.equal(Deno.readTextFileSync(`${folder}/${statuses[0].name}`).trim(), "0");

      const drain = startWorker(db, ["--drain"], { env });
      assert.equal(await exitWithin(drain, 30_000), 0, drain.stderr());
      const job = await showJob(db, id);
      assert.equal(job.state, "completed");
      assert.equal(job.attempts, 1, "settled from its exit status, not run again");
      assert.equal(await pathExists(`${folder}/${statuses[0].name}`), false, "the status served");
    } finally {
      killProcess(crashed);
      if (orphan !== undefined) {
        try {
          Deno.kill(-orphan, "SIGKILL");
        } catch {
          // Gone, as it should be.
        }
      }
    }
  }));

Deno.test("a worker started with another XDG_RUNTIME_DIR than the running ones says their runs folders differ", () =>
  withQueue(async ({ dir, db }) => {
    const runtime = makeRuntimeDir(dir);
    const env = { XDG_RUNTIME_DIR: runtime };
    const started = (worker: ReturnType<typeof startWorker>) =>
      waitFor("the worker to start", () => / started 1 worker /.test(worker.stdout()));
    const workers = [startWorker(db, [], { env })];
    try {
      await started(workers[0]);
      workers.push(startWorker(db, [], { env }));
      await started(workers[1]);
      assert.doesNotMatch(workers[1].stdout(), /keeps the runs folder/, "the same folder");
      workers.push(startWorker(db)); // XDG_RUNTIME_DIR empty: beside the database.
      await started(workers[2]);
      for (const worker of workers.slice(0, 2)) {
        assert.ok(
          workers[2].stdout().includes(
            `worker process ${worker.pid} keeps the runs folder of this database in ${
              runsFolder(db, runtime)
            }, this one in ${runsFolder(db)} (they started with different XDG_RUNTIME_DIR)`,
          ),
          workers[2].stdout(),
        );
      }
      for (const worker of workers) worker.signal("SIGTERM");
      for (const worker of workers) {
        assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      }
    } finally {
      workers.forEach(killProcess);
    }
  }));
