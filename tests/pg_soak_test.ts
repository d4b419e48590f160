/**
 * The crash soak, short, against PostgreSQL: the same run as
 * tests/soak_test.ts (150 jobs, at least 4 worker SIGKILLs), every worker
 * and command on a fresh schema of the test server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { taggedProcesses } from "../soak/processes.ts";
import { renderSummary, runSoak } from "../soak/soak.ts";
import { freshSchema, PG_IGNORE } from "./pg_helpers.ts";

Deno.test({
  name:
    "postgres crash soak: 150 jobs through at least 4 worker SIGKILLs all end as planned, none lost",
  ignore: PG_IGNORE,
  fn: async () => {
    const schema = await freshSchema();
    try {
      const seed = Math.floor(Math.random() * 2 ** 31);
      const report = await runSoak({
        jobs: 150,
        kills: 4,
        seed,
        timeoutMs: 60_000,
        db: schema.url,
      });
      const summary = `seed ${seed}\n${renderSummary(report)}`;
      assert.deepEqual(report.failures, [], summary);
      assert.equal(report.findings.lost.length, 0, summary);
      assert.deepEqual(
        report.findings.states,
        { completed: report.jobs.ok, dead: report.jobs.fail },
        summary,
      );
      assert.ok(report.kills >= 4, summary);
      assert.equal(report.findings.overlaps.length, 0, summary);
      assert.ok(report.passed, summary);
      assert.deepEqual(taggedProcesses(report.tag), [], "no process of the run is left");
    } finally {
      await schema.drop();
    }
  },
});
