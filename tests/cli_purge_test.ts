/**
 * `queuectl purge` from the outside.
 *
 * @module
 */

import assert from "node:assert/strict";
import { assertRefused, cli, cliOk, enqueue, jobCounts, withQueue } from "./helpers.ts";

Deno.test("purge deletes finished jobs by state and age and leaves the rest", () =>
  withQueue(async ({ db }) => {
    await enqueue(db, "true", "--id", "ok");
    await enqueue(db, "exit 1", "--id", "bad", "--max-retries", "0");
    await cliOk(["worker", "start", "--drain"], { db });
    await enqueue(db, "true", "--id", "waiting");

    assert.equal(await cliOk(["purge", "--older-than", "1h"], { db }), "purged 0 jobs\n");
    assert.equal(
      await cliOk(["purge", "--state", "dead", "--older-than", "0"], { db }),
      "purged 1 job\n",
    );
    assert.deepEqual(await jobCounts(db), {
      blocked: 0,
      pending: 1,
      processing: 0,
      completed: 1,
      failed: 0,
      dead: 0,
    });
    assert.equal(await cliOk(["purge", "--older-than", "0"], { db }), "purged 1 job\n");
    assert.equal((await jobCounts(db)).pending, 1);
  }));

Deno.test("purge refuses unfinished states, a missing age and bad durations", () =>
  withQueue(async ({ db }) => {
    await enqueue(db, "true", "--id", "waiting");
    for (
      const args of [
        ["purge", "--state", "pending", "--older-than", "0"],
        ["purge", "--state", "completed,processing", "--older-than", "0"],
        ["purge", "--state", "completed"],
        ["purge", "--older-than", "soon"],
        ["purge", "extra", "--older-than", "0"],
      ]
    ) {
      assertRefused(await cli(args, { db }), 2, args.join(" "));
    }
    assert.equal((await jobCounts(db)).pending, 1);
  }));
