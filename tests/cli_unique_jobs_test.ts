/**
 * Unique jobs through the CLI (`enqueue --unique-key`, `--unique-for`, JSON
 * `unique_key`): a duplicate enqueue prints the first job's id, also from
 * several processes at once on both stores; `--file` applies keys per line;
 * `show` lists the key; `retry` refuses a job whose key another job holds.
 *
 * @module
 */

import assert from "node:assert/strict";
import { onBothStores } from "./both_stores.ts";
import { cli, cliOk, drain, listJobs, showJob, spawnCli } from "./helpers.ts";

onBothStores(
  "unique jobs: a duplicate enqueue adds nothing and prints the first job's id",
  async ({ db }) => {
    const first = (await cliOk(["enqueue", "--unique-key", "nightly", "echo one"], { db })).trim();
    const again = await cli(["enqueue", "--unique-key", "nightly", "echo two"], { db });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, `${first}\n`);
    assert.equal(
      again.stderr,
      `queuectl: not added: job '${first}' (pending) holds unique key "nightly" in queue ` +
        `'default'; its id is printed instead\n`,
    );
    // Another queue is another key space.
    const other =
      (await cliOk(["enqueue", "--unique-key", "nightly", "--queue", "b", "true"], { db }))
        .trim();
    assert.notEqual(other, first);
    assert.deepEqual((await listJobs(db)).map((job) => job.id).sort(), [first, other].sort());
    assert.equal((await showJob(db, first)).unique_key, "nightly");
    assert.match(await cliOk(["show", first], { db }), /^unique_key +nightly$/m);
  },
);

onBothStores(
  "unique jobs: enqueuers of one key in six processes at once add exactly one job",
  async ({ db }) => {
    // The schema exists before the race, so that it is the enqueues that race.
    await cliOk(["status"], { db });
    const processes = Array.from(
      { length: 6 },
      (_, i) =>
        spawnCli(["enqueue", "--unique-key", "race", "--unique-for", "1h", `echo ${i}`], { db }),
    );
    const codes = await Promise.all(processes.map((p) => p.exit()));
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 0], processes.map((p) => p.stderr()).join(""));
    const jobs = await listJobs(db);
    assert.equal(jobs.length, 1);
    assert.deepEqual(new Set(processes.map((p) => p.stdout().trim())), new Set([jobs[0].id]));
    assert.equal(processes.filter((p) => p.stderr().includes("not added")).length, 5);
    // Finished an hour ago or less, it still holds the key against --unique-for 1h; not without it.
    await drain(db);
    const held = await cliOk(["enqueue", "--unique-key", "race", "--unique-for", "1h", "true"], {
      db,
    });
    assert.equal(held.trim(), jobs[0].id);
    const added = (await cliOk(["enqueue", "--unique-key", "race", "true"], { db })).trim();
    assert.notEqual(added, jobs[0].id);
  },
);

Deno.test("unique jobs: --file applies keys per line and prints the holders' ids in place", async () => {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-test-" });
  try {
    const db = `${dir}/queue.db`;
    const file = `${dir}/jobs.txt`;
    await Deno.writeTextFile(
      file,
      [
        '{"id": "a1", "command": "true", "unique_key": "a"}',
        '{"id": "b1", "command": "true", "unique_key": "b"}',
        '{"id": "a2", "command": "true", "unique_key": "a"}',
        "echo plain",
      ].join("\n"),
    );
    const result = await cli(["enqueue", "--file", file], { db });
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split("\n");
    assert.deepEqual(lines.slice(0, 3), ["a1", "b1", "a1"]);
    assert.equal(
      result.stderr,
      `queuectl: job file line 3: not added: job 'a1' (pending) holds unique key "a" in queue ` +
        `'default'; its id is printed instead\n`,
    );
    // --unique-key gives every line the same key: the first line's job holds it for the rest.
    await Deno.writeTextFile(file, "echo x\necho y\necho z\n");
    const all = await cli(["enqueue", "--file", file, "--unique-key", "one"], { db });
    const ids = all.stdout.trim().split("\n");
    assert.equal(ids.length, 3);
    assert.deepEqual(new Set(ids).size, 1);
    assert.equal(
      all.stderr,
      "queuectl: 2 of 3 jobs not added: their unique keys are held; the holders' ids are " +
        "printed in their places\n",
    );
    assert.equal((await listJobs(db)).length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unique jobs: retry refuses a finished job whose key a waiting job holds", async () => {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-test-" });
  try {
    const db = `${dir}/queue.db`;
    const old = (await cliOk(["enqueue", "--unique-key", "k", "true"], { db })).trim();
    await drain(db);
    const waiting = (await cliOk(["enqueue", "--unique-key", "k", "true"], { db })).trim();
    const retry = await cli(["retry", old], { db });
    assert.equal(retry.code, 1);
    assert.equal(
      retry.stderr,
      `queuectl: job '${old}' cannot start over: job '${waiting}' (pending) holds its unique ` +
        `key "k" in queue 'default'\n`,
    );
    assert.equal((await showJob(db, old)).state, "completed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unique jobs: an invalid key or --unique-for without a key is refused, nothing stored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-test-" });
  try {
    const db = `${dir}/queue.db`;
    for (
      const [args, message] of [
        [
          ["--unique-for", "1h"],
          "queuectl: a unique_for (--unique-for) needs a unique_key (--unique-key)\n",
        ],
        [
          ["--unique-key", ""],
          "queuectl: --unique-key: the unique key must be a non-empty string\n",
        ],
        [["--unique-key", "k", "--unique-for", "soon"], undefined],
      ] as const
    ) {
      const result = await cli(["enqueue", ...args, "true"], { db });
      assert.equal(result.code, 2, result.stderr);
      if (message !== undefined) assert.equal(result.stderr, message);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    }
    await assert.rejects(Deno.stat(db), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
