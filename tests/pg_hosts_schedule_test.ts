/**
 * Schedules on a PostgreSQL queue served from two hosts (simulated with
 * Linux namespaces, tests/hosts.ts): when the host whose worker process
 * fires (the leader) dies, a worker on the other host takes the lease and
 * fires on, with one job per firing and the missed firings caught up as one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cliOk, listJobs, MAIN, waitFor } from "./helpers.ts";
import { HOSTS, startOnHost } from "./hosts.ts";
import { freshSchema, PG_IGNORE } from "./pg_helpers.ts";

/** The job ids a worker's log says its process enqueued for schedule `name`, with when. */
function firedBy(log: string, name: string): { at: number; id: string }[] {
  return [...log.matchAll(new RegExp(`^(\\S+) schedule ${name}: enqueued (\\S+)$`, "gm"))]
    .map((match) => ({ at: Date.parse(match[1]), id: match[2] }));
}

Deno.test({
  name: "postgres hosts: when the firing host dies, another host fires on, once per firing",
  ignore: PG_IGNORE || "skip" in HOSTS,
  fn: async () => {
    const schema = await freshSchema();
    const dir = await Deno.makeTempDir({ prefix: "queuectl-hosts-" });
    const db = schema.url;
    const onHost = (hostname: string) =>
      startOnHost(
        hostname,
        [Deno.execPath(), "run", "-A", MAIN, "--db", db, "worker", "start"],
        { cwd: dir, env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "", HOME: dir } },
      );
    await cliOk(["config", "set", "lease-timeout", "5s"], { db });
    await cliOk(["schedule", "add", "tick", "--every", "1s", "echo tick"], { db, cwd: dir });
    const hosts = [onHost("host-a"), onHost("host-b")];
    try {
      const leader = await waitFor("a host firing", () => {
        return hosts.find((host) => firedBy(host.stdout(), "tick").length >= 2);
      }, { timeoutMs: 30_000 });
      await leader.crash();
      const crashedAt = Date.now();
      const survivor = hosts.find((host) => host !== leader)!;
      await waitFor("the other host firing", () => firedBy(survivor.stdout(), "tick").length >= 2, {
        timeoutMs: 30_000,
      });
      await survivor.signal("SIGTERM");
      assert.equal((await survivor.status()).code, 0, survivor.stderr());
      const byLeader = firedBy(leader.stdout(), "tick");
      const bySurvivor = firedBy(survivor.stdout(), "tick");
      const jobs = (await listJobs(db)).map((job) => job.id).sort();
      // Every job was enqueued by one host's firing, and no firing twice (ids are unique).
      assert.deepEqual(jobs, [...byLeader, ...bySurvivor].map((f) => f.id).sort());
      // The missed firings of the takeover came as one job, the latest: no burst.
      const [takeover, next] = bySurvivor;
      const firing = (f: { id: string }) => Date.parse(f.id.replace(/^tick@/, ""));
      assert.ok(firing(takeover) >= crashedAt, `${takeover.id} came after the crash`);
      // The lease (5 s) keeps the survivor waiting at least 4 s after the crash: the latest missed
      // firing is then at least that late, the first missed ones (what a burst would start with)
      // within a second of it. The firing is due up to a period before the survivor decides, and
      // its log line comes after the enqueue: a loaded machine may log it over a second later.
      assert.ok(firing(takeover) - crashedAt >= 3_000, `${takeover.id}: the latest missed`);
      assert.ok(takeover.at - firing(takeover) < 5_000, `${takeover.id}: fired when it took over`);
      // Then on again, one firing per job: a timer that a loaded machine runs late catches up as
      // one firing too, so the next may be two periods on, never between periods.
      const step = firing(next) - firing(takeover);
      assert.ok(step >= 1_000 && step % 1_000 === 0, `then every second again (${step} ms on)`);
    } finally {
      for (const host of hosts) await host.crash().catch(() => {});
      await schema.drop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
