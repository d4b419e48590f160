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
import { pokeLocalWorkers, runsDirOf, wakeSocketPath } from "../lib/worker/wake.ts";
import type { Store } from "../lib/store/store.ts";
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

/** Registers `pid` as a live worker process of this host, as `worker start` would. */
async function registerAs(store: Store, id: string, pid: number, procStart: string | null) {
  const now = Date.now();
  await store.registerWorker({
    id,
    pid,
    host: hostname(),
    threads: 1,
    startedAt: now,
    heartbeatAt: now,
    stopRequested: false,
    procStart,
  });
}

function isSocket(path: string): boolean {
  try {
    return Deno.statSync(path).isSocket === true;
  } catch {
    return false;
  }
}

Deno.test("pokeLocalWorkers() never signals a process whose start time does not match", () =>
  withQueue(async ({ db }) => {
    const bystander = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const store = await openSqliteStore(db);
    try {
      // Not when `sleep` started: its pid was "reused".
      await registerAs(store, "impostor", bystander.pid, "1");
      await pokeLocalWorkers(store, db);
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
      const [record] = await waitFor("the worker to register", async () => {
        const workers = await liveWorkers(db);
        return workers.length > 0 ? workers : undefined;
      });
      const socket = wakeSocketPath(runsDirOf(db), record.id);
      assert.ok(isSocket(socket), `no wake socket at ${socket}`);
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      assert.equal(isSocket(socket), false, "the wake socket outlived its worker");
    } finally {
      killProcess(worker);
    }
  }));

Deno.test("pokeLocalWorkers() wakes a worker through its socket, without a signal", () =>
  withQueue(async ({ db }) => {
    // SIGUSR2 ends `sleep`: the poke must arrive as a connection instead.
    const bystander = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const store = await openSqliteStore(db);
    Deno.mkdirSync(runsDirOf(db), { recursive: true });
    const listener = Deno.listen({
      transport: "unix",
      path: wakeSocketPath(runsDirOf(db), "listening"),
    });
    try {
      await registerAs(store, "listening", bystander.pid, processStartTime(bystander.pid));
      const accepted = listener.accept();
      await pokeLocalWorkers(store, db);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const connection = await Promise.race([
        accepted,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no connection within 10 s")), 10_000);
        }),
      ]).finally(() => clearTimeout(timer));
      connection.close();
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(processExists(bystander.pid), "the worker was signalled as well");
    } finally {
      listener.close();
      await store.close();
      bystander.kill("SIGKILL");
      await bystander.status;
    }
  }));

Deno.test("pokeLocalWorkers() signals a worker that has no wake socket", () =>
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
      await registerAs(store, "signal-only", listener.pid, processStartTime(listener.pid));
      await pokeLocalWorkers(store, db);
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
      const [record] = await waitFor("the worker to register", async () => {
        const workers = await liveWorkers(db);
        return workers.length > 0 ? workers : undefined;
      });
      socket = wakeSocketPath(runsDirOf(db), record.id);
      assert.ok(isSocket(socket));
    } finally {
      killProcess(worker);
      await worker.child.status;
    }
    assert.ok(isSocket(socket), "SIGKILL leaves the socket behind");
    const store = await openSqliteStore(db);
    try {
      assert.deepEqual(await pruneDeadWorkers(store, runsDirOf(db)), []);
      assert.equal(isSocket(socket), false, "the stale wake socket is still there");
    } finally {
      await store.close();
    }
  }));
