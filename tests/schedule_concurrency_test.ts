/**
 * Schedules fired by several processes at once (lib/worker/scheduler.ts and
 * the stores' `fireSchedule`): however many firers race, on SQLite (one
 * file) or PostgreSQL, each firing enqueues exactly one job. The firers all
 * act as the leader, as two processes can for a moment while the lease
 * changes hands: the database, not the lease, makes a firing happen once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { onBothStores } from "./both_stores.ts";
import { cliOk, listJobs, openQueueStore } from "./helpers.ts";
import { worker } from "./store_builders.ts";

const FIRERS = 4;
const LEADER = "leader";

onBothStores(
  "four processes firing the same schedules enqueue one job per firing",
  async ({ db, dir }) => {
    for (const name of ["a", "b"]) {
      await cliOk(
        ["schedule", "add", name, "--every", "1s", "--overlap", "allow", `echo ${name}`],
        {
          db,
          cwd: dir,
        },
      );
    }
    // The firers act as LEADER, registered here as a live worker process that holds the lease.
    const store = await openQueueStore(db);
    const start = store.now();
    const leader = worker(LEADER, { startedAt: start, heartbeatAt: start });
    await store.registerWorker(leader);
    await store.heartbeatWorker(leader);
    await store.close();
    // Eight firings of each schedule, one second apart, from the first one due.
    const first = Math.ceil((start + 1) / 1000) * 1000;
    const moments = Array.from({ length: 8 }, (_, k) => String(first + k * 1000 + 5));
    const firers = Array.from({ length: FIRERS }, () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("./fixtures/fire_schedules.ts", import.meta.url).pathname,
          db,
          LEADER,
          ...moments,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn());
    const readers = firers.map((firer) =>
      firer.stdout.pipeThrough(new TextDecoderStream()).getReader()
    );
    for (const reader of readers) assert.equal((await reader.read()).value?.trim(), "ready");
    // All at once.
    await Promise.all(firers.map(async (firer) => {
      const writer = firer.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
    }));
    const outputs = await Promise.all(readers.map(async (reader) => {
      let text = "";
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        text += chunk.value;
      }
      return text;
    }));
    const statuses = await Promise.all(firers.map((firer) => firer.status));
    const stderr = await Promise.all(
      firers.map(async (firer) => await new Response(firer.stderr).text()),
    );
    assert.ok(statuses.every((status) => status.success), stderr.join("\n"));
    const results = outputs.flatMap((text) => JSON.parse(text.trim()) as string[]);
    const fired = results.filter((line) => line.startsWith("fired ")).map((line) => line.slice(6));
    const expected = ["a", "b"].flatMap((name) =>
      moments.map((_, k) => `${name}@${new Date(first + k * 1000).toISOString()}`)
    ).sort();
    assert.deepEqual([...fired].sort(), expected, "each firing fired by exactly one process");
    assert.ok(results.every((line) => /^(fired|lost) /.test(line)), results.join("\n"));
    assert.deepEqual((await listJobs(db)).map((job) => job.id).sort(), expected);
  },
);
