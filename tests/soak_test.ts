/**
 * The crash soak, short: the same code as `deno task soak`, with 150 jobs and
 * at least 4 worker kills; and its checks, fed runs that break each
 * invariant, so that a soak that passes is known to be able to fail.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { JobJson } from "../lib/job.ts";
import { analyze, killMark, type WorkerLog } from "../soak/analysis.ts";
import type { JobKind } from "../soak/plan.ts";
import { taggedProcesses } from "../soak/processes.ts";
import { renderSummary, runSoak } from "../soak/soak.ts";

Deno.test("crash soak: 150 jobs through at least 4 worker SIGKILLs all end as planned, none lost", async () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const report = await runSoak({ jobs: 150, kills: 4, seed, timeoutMs: 30_000 });
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
});

/** A job as `list --json` prints it, with the fields the checks read. */
function job(
  id: string,
  state: JobJson["state"],
  attempts: number,
  lastError: string | null = null,
) {
  return { id, state, attempts, last_error: lastError } as JobJson;
}

/** A worker log line as a run's start prints it. */
function started(pid: number, id: string, attempt: number): string {
  return `2026-01-01T00:00:00.000Z [vm-${pid}-abc/1] ${id} started (attempt ${attempt} of 11, worker 1): x\n`;
}

Deno.test("soak checks: a clean run has nothing to report", () => {
  const findings = analyze({
    plan: new Map<string, JobKind>([["a", "ok"], ["f", "fail"]]),
    jobs: [job("a", "completed", 1), job("f", "dead", 2, "exited with code 3")],
    ledgerText: "a 1 begin\nf 1 begin\na 1 end\nf 1 end\nf 2 begin\nf 2 end\n",
    logs: [],
  });
  assert.deepEqual(findings.lost, []);
  assert.deepEqual(findings.wrongOutcome, []);
  assert.deepEqual(findings.overlaps, []);
  assert.equal(findings.duplicateJobs, 0);
  assert.deepEqual(findings.states, { completed: 1, dead: 1 });
});

Deno.test("soak checks: unfinished, missing and unproven jobs are lost; wrong ends are flagged", () => {
  const findings = analyze({
    plan: new Map<string, JobKind>([
      ["pending", "ok"],
      ["missing", "ok"],
      ["no-line", "ok"],
      ["ok-dead", "ok"],
      ["fail-done", "fail"],
    ]),
    jobs: [
      job("pending", "pending", 0),
      job("no-line", "completed", 2),
      job("ok-dead", "dead", 11, "worker lost"),
      job("fail-done", "completed", 1),
    ],
    // no-line's recorded attempt (2) never wrote its end line.
    ledgerText: "no-line 1 begin\nno-line 1 end\nno-line 2 begin\n",
    logs: [],
  });
  assert.equal(findings.lost.length, 3, findings.lost.join("\n"));
  assert.match(findings.lost.join("\n"), /pending: left pending/);
  assert.match(findings.lost.join("\n"), /missing: missing/);
  assert.match(
    findings.lost.join("\n"),
    /no-line: completed at attempt 2, but that run left no end/,
  );
  assert.equal(findings.wrongOutcome.length, 2, findings.wrongOutcome.join("\n"));
  assert.equal(findings.deadByLostWorker, 1);
});

Deno.test("soak checks: a run that ends after its retry began overlaps; an attempt begun twice is caught", () => {
  const findings = analyze({
    plan: new Map<string, JobKind>([["a", "ok"], ["b", "ok"]]),
    jobs: [job("a", "completed", 2), job("b", "completed", 1)],
    ledgerText: "a 1 begin\na 2 begin\na 1 end\na 2 end\nb 1 begin\nb 1 begin\nb 1 end\n",
    logs: [],
  });
  assert.deepEqual(findings.overlaps, ["a: attempt 1 ended after attempt 2 had begun"]);
  assert.deepEqual(findings.doubleRuns, ["b: attempt 1"]);
});

Deno.test("soak checks: extra successful runs are told apart by when their worker was killed", () => {
  const logs: WorkerLog[] = [
    { pid: 10, stdout: started(10, "early", 1) + started(10, "late", 1), stderr: "", killed: true },
    { pid: 20, stdout: started(20, "odd", 1), stderr: "", killed: false },
  ];
  const findings = analyze({
    plan: new Map<string, JobKind>([["early", "ok"], ["late", "ok"], ["odd", "ok"]]),
    jobs: [job("early", "completed", 2), job("late", "completed", 2), job("odd", "completed", 2)],
    ledgerText: [
      "early 1 begin\nlate 1 begin\nodd 1 begin\n",
      "early 1 end\n", // finished, then its worker was killed before recording it
      killMark(10),
      "late 1 end\n", // the orphaned run went on after the kill
      "odd 1 end\n", // its worker was never killed: nothing explains a rerun
      "early 2 begin\nearly 2 end\nlate 2 begin\nlate 2 end\nodd 2 begin\nodd 2 end\n",
    ].join(""),
    logs,
  });
  assert.equal(findings.duplicateJobs, 3);
  assert.deepEqual(findings.duplicateRuns, {
    "before-kill": 1,
    "after-kill": 1,
    "stale-worker": 0,
    unexplained: 1,
  });
  assert.match(findings.unexplained[0], /^odd: attempt 1 finished/);
  assert.deepEqual(findings.lost, []);
});
