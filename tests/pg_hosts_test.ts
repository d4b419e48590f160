/**
 * Many machines, one queue: worker processes on different hosts sharing a
 * PostgreSQL queue. Each host is simulated with Linux namespaces
 * (tests/hosts.ts): its own hostname and process-id space, the same files
 * and loopback network, and a crash that ends every process on it at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cli, cliOk, MAIN, readIfExists, showJob, waitFor } from "./helpers.ts";

type JobJson = Awaited<ReturnType<typeof showJob>>;
import { type HostProcess, HOSTS, startOnHost } from "./hosts.ts";
import { freshSchema, PG_IGNORE } from "./pg_helpers.ts";

/** A test that needs both a PostgreSQL server and simulated hosts. */
function multiHostTest(name: string, fn: (db: string, dir: string) => Promise<void>): void {
  Deno.test({
    name,
    ignore: PG_IGNORE || "skip" in HOSTS,
    fn: async () => {
      const schema = await freshSchema();
      const dir = await Deno.makeTempDir({ prefix: "queuectl-hosts-" });
      try {
        await fn(schema.url, dir);
      } finally {
        await schema.drop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  });
}

/** Starts `worker start <args>` on host `hostname`, against the queue `db`. */
function workerOnHost(hostname: string, db: string, dir: string, ...args: string[]): HostProcess {
  return startOnHost(
    hostname,
    [Deno.execPath(), "run", "-A", MAIN, "--db", db, "worker", "start", ...args],
    { cwd: dir, env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "", HOME: dir } },
  );
}

/** Sends `signal` to `pid` unless it has exited meanwhile. */
function signalIfAlive(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** The live worker processes as `status --json` lists them, by host. */
async function workerHosts(db: string): Promise<string[]> {
  const status = JSON.parse(await cliOk(["status", "--json"], { db }));
  return (status.workers as { host: string }[]).map((worker) => worker.host).sort();
}

/** Waits until `job` is running (on any host) and returns it. */
function runningJob(db: string, id: string): Promise<JobJson> {
  return waitFor(`job ${id} running`, async () => {
    const job = await showJob(db, id);
    return job.state === "processing" ? job : undefined;
  }, { timeoutMs: 30_000 });
}

multiHostTest(
  "postgres hosts: workers on two hosts share one queue and no job runs twice",
  async (db, dir) => {
    const ledger = `${dir}/ledger`;
    await cliOk(["pause"], { db });
    const ids = Array.from({ length: 120 }, (_, i) => `j${i}`);
    const specs = ids.map((id) =>
      JSON.stringify({ id, command: `echo "${id} $(hostname)" >> ${ledger}` })
    ).join("\n");
    await cliOk(["enqueue", "--file", "-"], { db, stdin: specs });
    const hosts = [
      workerOnHost("host-a", db, dir, "--count", "2"),
      workerOnHost("host-b", db, dir, "--count", "2"),
    ];
    try {
      await waitFor(
        "a worker process on each host",
        async () => (await workerHosts(db)).join() === "host-a,host-b" || undefined,
        { timeoutMs: 30_000 },
      );
      await cliOk(["resume"], { db });
      await waitFor("every job completed", async () => {
        const status = JSON.parse(await cliOk(["status", "--json"], { db }));
        return status.jobs.completed === ids.length || undefined;
      }, { timeoutMs: 60_000 });
    } finally {
      for (const host of hosts) {
        await host.signal("SIGTERM");
        const status = await host.status();
        assert.equal(status.code, 0, `${host.hostname}: ${host.stderr()}`);
      }
    }
    const lines = (await readIfExists(ledger)).trim().split("\n");
    const runs = new Map<string, string[]>();
    for (const line of lines) {
      const [id, host] = line.split(" ");
      runs.set(id, [...runs.get(id) ?? [], host]);
    }
    assert.deepEqual([...runs.keys()].sort(), [...ids].sort(), "every job ran");
    const twice = [...runs].filter(([, on]) => on.length > 1);
    assert.deepEqual(twice, [], "no job ran twice");
    const counts = JSON.parse(await cliOk(["status", "--json"], { db })).jobs;
    assert.equal(counts.completed, ids.length);
    const byHost = new Set([...runs.values()].flat());
    assert.deepEqual([...byHost].sort(), ["host-a", "host-b"], "both hosts ran jobs");
  },
);

multiHostTest(
  "postgres hosts: a job of a host that died is recovered by a worker on another host after the lease",
  async (db, dir) => {
    await cliOk(["config", "set", "lease-timeout", "5s"], { db });
    const marker = `${dir}/first-run`;
    // The first run hangs (its host dies under it); the second finishes at once.
    const id = (await cliOk([
      "enqueue",
      "--id",
      "long",
      `if [ -e ${marker} ]; then echo "second run on $(hostname)"; exit 0; fi; touch ${marker}; sleep 600`,
    ], { db })).trim();
    const hostA = workerOnHost("host-a", db, dir);
    const running = await runningJob(db, id);
    assert.match(running.worker_id ?? "", /^host-a-/);
    const crashedAt = Date.now();
    await hostA.crash();
    const hostB = workerOnHost("host-b", db, dir);
    try {
      const done = await waitFor("the job completed on host-b", async () => {
        const job = await showJob(db, id);
        return job.state === "completed" ? job : undefined;
      }, { timeoutMs: 60_000 });
      assert.ok(Date.now() - crashedAt >= 5_000, "not before the lease ran out");
      assert.equal(done.attempts, 2);
      const show = await cliOk(["show", id], { db });
      assert.match(show, /worker (process )?(was )?lost/i, "the first run ended as lost");
      const logs = await cliOk(["logs", id], { db });
      assert.equal(logs, "second run on host-b\n");
    } finally {
      await hostB.signal("SIGTERM");
      await hostB.status();
    }
  },
);

multiHostTest(
  "postgres hosts: the late outcome of a host that comes back after the lease is discarded",
  async (db, dir) => {
    await cliOk(["config", "set", "lease-timeout", "5s"], { db });
    const ledger = `${dir}/ledger`;
    const id = (await cliOk([
      "enqueue",
      "--id",
      "slow",
      "--max-retries",
      "0",
      `sleep 3; echo "ran on $(hostname)" >> ${ledger}`,
    ], { db })).trim();
    const hostA = workerOnHost("host-a", db, dir);
    await runningJob(db, id);
    // The machine freezes (every process stopped), long enough to lose its lease.
    const frozen = await hostA.processes();
    for (const pid of frozen) signalIfAlive(pid, "SIGSTOP");
    const hostB = workerOnHost("host-b", db, dir);
    try {
      await waitFor("host-b took the job over", async () => {
        const job = await showJob(db, id);
        return job.state !== "processing" || job.worker_id?.startsWith("host-b-") || undefined;
      }, { timeoutMs: 60_000 });
      for (const pid of frozen) signalIfAlive(pid, "SIGCONT");
      // On one machine the hosts share the cgroup tree, so host-b's rescue may
      // have ended host-a's run through it; either way host-a comes back to a
      // run that is no longer its own.
      await waitFor(
        "host-a discarded its late outcome",
        () => hostA.stdout().includes("no longer this worker's; outcome discarded") || undefined,
        { timeoutMs: 30_000 },
      );
      const job = await waitFor("the job finished", async () => {
        const job = await showJob(db, id);
        return job.state === "completed" || job.state === "dead" ? job : undefined;
      }, { timeoutMs: 60_000 });
      // No retries: host-b's rescue buried it as lost; host-a's success came too late to count.
      assert.equal(job.state, "dead");
      assert.match(job.last_error ?? "", /^worker lost/);
      assert.equal(job.attempts, 1);
    } finally {
      for (const host of [hostA, hostB]) {
        await host.signal("SIGTERM").catch(() => {});
        await host.status();
      }
    }
  },
);

multiHostTest(
  "postgres hosts: a job whose cwd does not exist on the host that runs it fails, naming the host",
  async (db, dir) => {
    const only = `${dir}/only-on-a`;
    await Deno.mkdir(only);
    const id = (await cliOk(["enqueue", "--cwd", only, "--max-retries", "0", "pwd"], { db }))
      .trim();
    // host-b's own /tmp-like view: the folder is hidden under an empty tmpfs there.
    const hostB = startOnHost("host-b", [
      "sh",
      "-c",
      `mount -t tmpfs none ${dir} && exec "$@"`,
      "sh",
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "--db",
      db,
      "worker",
      "start",
      "--drain",
    ], { env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "", HOME: "/tmp" } });
    const status = await hostB.status();
    assert.equal(status.code, 0, hostB.stderr());
    const job = await showJob(db, id);
    assert.equal(job.state, "dead");
    assert.equal(
      job.last_error,
      `could not start: working directory ${only} does not exist on host-b`,
    );
    const result = await cli(["show", id], { db });
    assert.equal(result.code, 0);
  },
);
