/**
 * Jobs that run after other jobs (`enqueue --after`), with real workers:
 * the order of a chain, dead jobs taking the jobs after them to the DLQ,
 * and starting a broken chain over with `retry`.
 */

import assert from "node:assert/strict";
import {
  assertRefused,
  cli,
  cliOk,
  drain,
  enqueueIn,
  readLines,
  showJob,
  withQueue,
} from "./helpers.ts";

Deno.test("a chain enqueued with --after runs in order, however many workers there are", () =>
  withQueue(async ({ dir, db }) => {
    // Later links get higher priorities, and the first one takes its time:
    // without the dependencies, three workers would run them all at once.
    await enqueueIn(dir, db, "sleep 0.3; echo A >> ledger", "--id", "A");
    await enqueueIn(
      dir,
      db,
      "sleep 0.2; echo B >> ledger",
      "--id",
      "B",
      "--after",
      "A",
      "--priority",
      "1",
    );
    await enqueueIn(dir, db, "echo C >> ledger", "--id", "C", "--after", "B", "--priority", "2");
    await enqueueIn(dir, db, "echo D >> ledger", "--id", "D", "--after", "A,C", "--priority", "3");
    assert.equal((await showJob(db, "A")).state, "pending");
    for (const id of ["B", "C", "D"]) assert.equal((await showJob(db, id)).state, "blocked");

    await drain(db, "--count", "3");
    assert.deepEqual(await readLines(`${dir}/ledger`), ["A", "B", "C", "D"]);
    for (const id of ["A", "B", "C", "D"]) {
      assert.equal((await showJob(db, id)).state, "completed");
    }

    // After a completed job, a new job is free to run at once.
    await enqueueIn(dir, db, "echo E >> ledger", "--id", "E", "--after", "D");
    assert.equal((await showJob(db, "E")).state, "pending");
  }));

Deno.test("a job that ends dead takes the jobs after it to the DLQ, naming the job they ran after", () =>
  withQueue(async ({ dir, db }) => {
    await enqueueIn(dir, db, "echo A >> ledger; exit 1", "--id", "A", "--max-retries", "0");
    await enqueueIn(dir, db, "echo B >> ledger", "--id", "B", "--after", "A");
    await enqueueIn(dir, db, "echo C >> ledger", "--id", "C", "--after", "B");
    await drain(db);

    assert.deepEqual(await readLines(`${dir}/ledger`), ["A"], "B and C never ran");
    assert.equal((await showJob(db, "A")).state, "dead");
    const b = await showJob(db, "B");
    assert.equal(b.state, "dead");
    assert.equal(b.attempts, 0);
    assert.equal(b.last_error, "runs after 'A', which is dead");
    const c = await showJob(db, "C");
    assert.equal(c.state, "dead");
    assert.equal(c.last_error, "runs after 'B', which is dead");
    assert.deepEqual(
      JSON.parse(await cliOk(["dlq", "list", "--json"], { db })).map((j: { id: string }) => j.id)
        .sort(),
      ["A", "B", "C"],
    );

    // A new job after a dead one is dead at once.
    assert.equal(
      await cliOk(["enqueue", "--id", "D", "--after", "A", "echo D >> ledger"], { db }),
      "D\n",
    );
    const d = await showJob(db, "D");
    assert.equal(d.state, "dead");
    assert.equal(d.last_error, "runs after 'A', which is dead");

    // After a job that does not exist: refused, nothing stored.
    const missing = await cli(["enqueue", "--id", "E", "--after", "nosuch", "true"], { db });
    assertRefused(missing, 1, "enqueue --after a missing job");
    assert.match(missing.stderr, /'nosuch', which does not exist/);
    assertRefused(await cli(["show", "E"], { db }), 1, "show E");
  }));

Deno.test("retry of a dead chain's first job, then of the rest, runs the chain in order", () =>
  withQueue(async ({ dir, db }) => {
    // A fails until the file `fixed` exists.
    await enqueueIn(
      dir,
      db,
      "test -f fixed && echo A >> ledger",
      "--id",
      "A",
      "--max-retries",
      "0",
    );
    await enqueueIn(dir, db, "echo B >> ledger", "--id", "B", "--after", "A");
    await enqueueIn(dir, db, "echo C >> ledger", "--id", "C", "--after", "B");
    await drain(db);
    for (const id of ["A", "B", "C"]) assert.equal((await showJob(db, id)).state, "dead");

    const tooSoon = await cli(["retry", "B"], { db });
    assertRefused(tooSoon, 1, "retry of B while A is dead");
    assert.match(tooSoon.stderr, /runs after 'A', which is dead/);
    assert.equal((await showJob(db, "B")).state, "dead");

    await Deno.writeTextFile(`${dir}/fixed`, "");
    assert.equal(await cliOk(["retry", "A"], { db }), "A\n");
    const rest = await cli(["retry", "C", "B"], { db });
    assert.equal(rest.code, 0, rest.stderr);
    assert.equal(rest.stdout, "B\nC\n");
    assert.match(rest.stderr, /job 'B' is blocked: it runs after 'A'/);
    assert.equal((await showJob(db, "B")).state, "blocked");
    assert.equal((await showJob(db, "C")).state, "blocked");

    await drain(db, "--count", "2");
    assert.deepEqual(await readLines(`${dir}/ledger`), ["A", "B", "C"]);
    for (const id of ["A", "B", "C"]) assert.equal((await showJob(db, id)).state, "completed");
  }));

Deno.test("deleting a job that has not completed sends the jobs after it to the DLQ", () =>
  withQueue(async ({ dir, db }) => {
    await enqueueIn(dir, db, "true", "--id", "A", "--delay", "1h");
    await enqueueIn(dir, db, "true", "--id", "B", "--after", "A");
    assert.equal(await cliOk(["delete", "A"], { db }), "deleted 1 job\n");
    const b = await showJob(db, "B");
    assert.equal(b.state, "dead");
    assert.equal(b.last_error, "runs after 'A', which was deleted");
    const afterOf = async (id: string) =>
      JSON.parse(await cliOk(["show", id, "--json"], { db })).after;
    assert.deepEqual(await afterOf("B"), [{ id: "A", state: null }]);
    assert.match(await cliOk(["show", "B"], { db }), /after\s+A \(deleted\)/);

    // A new job that reuses the id is a different job: B still ran after the deleted one.
    await enqueueIn(dir, db, "true", "--id", "A");
    assert.deepEqual(await afterOf("B"), [{ id: "A", state: null }]);
  }));
