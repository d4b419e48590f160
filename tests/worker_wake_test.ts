/**
 * Waking workers: enqueues poke this host's live worker processes through
 * their wake sockets (or a signal where there is none), and never a process
 * that merely reuses a registered pid.
 *
 * @module
 */

import assert from "node:assert/strict";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import { hostname, processStartTime } from "../lib/worker/process_info.ts";
import { pruneDeadWorkers } from "../lib/worker/rescuer.ts";
import { runsFolderOf, wakeSocketPath } from "../lib/worker/runs_folder.ts";
import { listenForPokes, removeStrayWakeSockets } from "../lib/worker/wake.ts";
import type { WorkerRecord } from "../lib/store/store.ts";
import { worker } from "./store_builders.ts";
import {
  enqueue,
  exitWithin,
  jobCounts,
  killProcess,
  liveWorkers,
  processExists,
  runsFolder,
  showJob,
  startWorker,
  waitFor,
  within,
  withQueue,
} from "./helpers.ts";

/** A registry row for `pid` as a live worker process of this host, as `worker start` makes. */
function workerRecord(id: string, pid: number, procStart: string | null): WorkerRecord {
  const now = Date.now();
  return {
    id,
    pid,
    host: hostname(),
    threads: 1,
    startedAt: now,
    heartbeatAt: now,
    stopRequested: false,
    procStart,
  };
}

/** The wake socket of the one worker process `status --json` lists, once it lists one. */
async function onlyWorkersSocket(db: string): Promise<string> {
  const [record] = await waitFor("the worker to register", async () => {
    const workers = await liveWorkers(db);
    return workers.length > 0 ? workers : undefined;
  });
  return wakeSocketPath(runsFolder(db), {
    pid: record.pid,
    startedAt: Date.parse(record.started_at),
  });
}

/** Dates a file an hour back: sweeps leave sockets younger than a few seconds alone. */
function age(path: string): void {
  const anHourAgo = new Date(Date.now() - 3_600_000);
  Deno.utimeSync(path, anHourAgo, anHourAgo);
}

function isSocket(path: string): boolean {
  try {
    return Deno.statSync(path).isSocket === true;
  } catch {
    return false;
  }
}

Deno.test("an announcement never signals a process whose start time does not match", () =>
  withQueue(async ({ db }) => {
    const bystander = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const store = await openSqliteStore(db);
    try {
      // Not when `sleep` started: its pid was "reused".
      await store.registerWorker(workerRecord("impostor", bystander.pid, "1"));
      await store.notifier.announce("jobs");
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

Deno.test("a worker process listens on a wake socket beside the database and removes it when it stops", () =>
  withQueue(async ({ db }) => {
    await jobCounts(db);
    const worker = startWorker(db, ["--count", "1"]);
    try {
      const socket = await onlyWorkersSocket(db);
      assert.ok(isSocket(socket), `no wake socket at ${socket}`);
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      assert.equal(isSocket(socket), false, "the wake socket outlived its worker");
    } finally {
      killProcess(worker);
    }
  }));

Deno.test("an announcement wakes a worker through its socket, without a signal", () =>
  withQueue(async ({ db }) => {
    // SIGUSR2 ends `sleep`: the poke must arrive as a connection instead.
    const bystander = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const store = await openSqliteStore(db);
    const record = workerRecord("listening", bystander.pid, processStartTime(bystander.pid));
    // Where this process's notifier looks, by this process's environment.
    const runsDir = runsFolderOf({ kind: "sqlite", path: db })!;
    Deno.mkdirSync(runsDir, { recursive: true });
    let pokes = 0;
    let poked!: () => void;
    const firstPoke = new Promise<void>((resolve) => poked = resolve);
    const failures: string[] = [];
    const socket = listenForPokes(wakeSocketPath(runsDir, record), () => {
      pokes++;
      poked();
    }, (message) => failures.push(message));
    assert.ok(socket, "the socket could not be made");
    try {
      await store.registerWorker(record);
      await store.notifier.announce("jobs");
      await within(firstPoke, 10_000, "the poke");
      await store.notifier.announce("jobs");
      await waitFor("the second poke", () => pokes === 2);
      assert.ok(processExists(bystander.pid), "the worker was signalled as well");
      assert.deepEqual(failures, []);
    } finally {
      socket.close();
      await store.close();
      bystander.kill("SIGKILL");
      await bystander.status;
      // Under XDG_RUNTIME_DIR, if this process has one, rather than in the temp folder.
      Deno.removeSync(runsDir, { recursive: true });
    }
  }));

Deno.test("an announcement knocks at each wake socket of the runs folder, not by the registry's records", () =>
  withQueue(async ({ db }) => {
    const store = await openSqliteStore(db);
    const runsDir = runsFolderOf({ kind: "sqlite", path: db })!;
    Deno.mkdirSync(runsDir, { recursive: true });
    // A socket whose process died without removing it: refused, and no reason to stop poking.
    const dead = Deno.listen({ transport: "unix", path: `${runsDir}/1-dead.wake` });
    dead.close();
    let pokes = 0;
    const failures: string[] = [];
    // Its socket's name matches no registered worker: a poke can only have come by the folder.
    const socket = listenForPokes(
      wakeSocketPath(runsDir, { pid: Deno.pid, startedAt: Date.now() }),
      () => pokes++,
      (message) => failures.push(message),
    );
    assert.ok(socket, "the socket could not be made");
    try {
      // No worker registered: nobody to wake (a worker registers before it first claims).
      await store.notifier.announce("jobs");
      // A worker of another host: the registry alone would signal nobody on this one.
      await store.registerWorker(worker("elsewhere", { host: `not-${hostname()}` }));
      await store.notifier.announce("jobs");
      await waitFor("the poke", () => pokes >= 1);
      // A knock of the first announcement would have been accepted before the second's.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(pokes, 1, "only the announcement made with a worker registered knocked");
      assert.deepEqual(failures, []);
    } finally {
      socket.close();
      await store.close();
      Deno.removeSync(runsDir, { recursive: true });
    }
  }));

Deno.test("an announcement never throws, even where the database can no longer be read", () =>
  withQueue(async ({ db }) => {
    const store = await openSqliteStore(db);
    await store.close();
    // What it announces is committed already: a failed poke must not turn that into an error.
    await store.notifier.announce("jobs");
  }));

Deno.test("an announcement signals a worker that has no wake socket", () =>
  withQueue(async ({ db, dir }) => {
    const marker = `${dir}/poked`;
    const listener = new Deno.Command("sh", {
      args: ["-c", `trap 'echo poked > "$1"' USR2; while :; do sleep 0.05; done`, "sh", marker],
    }).spawn();
    const store = await openSqliteStore(db);
    try {
      // The shell's trap is in place once it runs its first sleep.
      await waitFor("the shell to start", () => {
        const children = Deno.readTextFileSync(
          `/proc/${listener.pid}/task/${listener.pid}/children`,
        );
        return children.trim() !== "";
      });
      await store.registerWorker(
        workerRecord("signal-only", listener.pid, processStartTime(listener.pid)),
      );
      await store.notifier.announce("jobs");
      await waitFor("the signal to arrive", () => {
        try {
          return Deno.readTextFileSync(marker) === "poked\n";
        } catch {
          return false;
        }
      });
    } finally {
      await store.close();
      listener.kill("SIGKILL");
      await listener.status;
    }
  }));

Deno.test("a killed worker's wake socket is removed when its death is noticed", () =>
  withQueue(async ({ db }) => {
    await jobCounts(db);
    const worker = startWorker(db, ["--count", "1"]);
    let socket = "";
    try {
      socket = await onlyWorkersSocket(db);
      assert.ok(isSocket(socket));
    } finally {
      killProcess(worker);
      await worker.child.status;
    }
    assert.ok(isSocket(socket), "SIGKILL leaves the socket behind");
    age(socket);
    const store = await openSqliteStore(db);
    try {
      assert.deepEqual(await pruneDeadWorkers(store, runsFolder(db)), []);
      assert.equal(isSocket(socket), false, "the stale wake socket is still there");
    } finally {
      await store.close();
    }
  }));

Deno.test("a wake socket nobody serves is removed, unless it is new; one that is served is kept", () =>
  withQueue(async ({ db, dir }) => {
    const runsDir = runsFolder(db);
    Deno.mkdirSync(runsDir, { recursive: true });
    const stale = `${runsDir}/1-stale.wake`;
    const served = `${runsDir}/2-served.wake`;
    // A process that dies while listening leaves its socket file behind.
    const script = `${dir}/listen.ts`;
    await Deno.writeTextFile(
      script,
      'Deno.listen({ transport: "unix", path: Deno.args[0] }); setInterval(() => {}, 1000);\n',
    );
    const listener = new Deno.Command(Deno.execPath(), { args: ["run", "-A", script, stale] })
      .spawn();
    await waitFor("the listener's socket", () => isSocket(stale));
    listener.kill("SIGKILL");
    await listener.status;
    assert.ok(isSocket(stale), "the socket outlived its process");
    // A new one may be a worker's between its bind and its listen: kept.
    await removeStrayWakeSockets(runsDir, []);
    assert.ok(isSocket(stale), "a new socket was taken for abandoned");
    age(stale);

    const live = Deno.listen({ transport: "unix", path: served });
    try {
      age(served);
      const accepted = live.accept();
      await removeStrayWakeSockets(runsDir, []);
      (await within(accepted, 10_000, "the served socket's poke")).close();
      assert.equal(isSocket(stale), false, "the stale socket is still there");
      assert.ok(isSocket(served), "the served socket was removed");
    } finally {
      live.close();
    }
  }));

Deno.test("a worker process makes its wake socket again when it was removed", () =>
  withQueue(async ({ db }) => {
    await jobCounts(db);
    const worker = startWorker(db, ["--count", "1"]);
    try {
      const socket = await onlyWorkersSocket(db);
      await waitFor("the socket", () => isSocket(socket));
      Deno.removeSync(socket);
      // The heartbeat (every second) looks for it.
      await waitFor("the socket to be made again", () => isSocket(socket));
      // Served, not only made: a connection is accepted.
      (await Deno.connect({ transport: "unix", path: socket })).close();
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
  }));

Deno.test("a runs folder that others may write to is made private by worker start", () =>
  withQueue(async ({ db }) => {
    await jobCounts(db);
    const runsDir = runsFolder(db);
    Deno.mkdirSync(runsDir);
    Deno.chmodSync(runsDir, 0o777);
    const worker = startWorker(db, ["--count", "1"]);
    try {
      const socket = await onlyWorkersSocket(db);
      assert.ok(isSocket(socket), "the worker gave up its folder");
      assert.equal((Deno.statSync(runsDir).mode ?? 0) & 0o777, 0o700);
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
  }));

Deno.test({
  name: "a runs folder owned by another user is not used: no wake socket, a warning instead",
  ignore: Deno.uid() !== 0,
  fn: () =>
    withQueue(async ({ db }) => {
      await jobCounts(db);
      const runsDir = runsFolder(db);
      Deno.mkdirSync(runsDir);
      const chown = await new Deno.Command("chown", { args: ["nobody", runsDir] }).output();
      assert.ok(chown.success, "chown nobody");
      const worker = startWorker(db, ["--count", "1"]);
      try {
        await waitFor("the warning", () => worker.stdout().includes("belongs to another user"));
        assert.deepEqual([...Deno.readDirSync(runsDir)], [], "the worker used the folder");
        worker.signal("SIGTERM");
        assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      } finally {
        killProcess(worker);
      }
    }),
});
