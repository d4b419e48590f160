import assert from "node:assert/strict";
import {
  canTransition,
  CLAIMABLE_STATES,
  FINAL_STATES,
  isJobState,
  JOB_STATES,
  type JobState,
  stateAfterFailure,
  TRANSITIONS,
  UNFINISHED_STATES,
} from "../lib/states.ts";

Deno.test("JOB_STATES lists the six states in lifecycle order", () => {
  assert.deepEqual([...JOB_STATES], [
    "blocked",
    "pending",
    "processing",
    "completed",
    "failed",
    "dead",
  ]);
});

Deno.test("every transition leaves from and goes to real states", () => {
  for (const [name, transition] of Object.entries(TRANSITIONS)) {
    assert.ok(transition.from.length > 0, `${name} has no source state`);
    for (const from of transition.from) assert.ok(isJobState(from), `${name} from ${from}`);
    assert.ok(isJobState(transition.to), `${name} to ${transition.to}`);
  }
});

Deno.test("the claimable, final and unfinished groups are real states", () => {
  for (const state of [...CLAIMABLE_STATES, ...FINAL_STATES, ...UNFINISHED_STATES]) {
    assert.ok(isJobState(state), state);
  }
});

Deno.test("final and unfinished states split every state between them", () => {
  const all = [...FINAL_STATES, ...UNFINISHED_STATES].sort();
  assert.deepEqual(all, [...JOB_STATES].sort());
});

Deno.test("isJobState() knows the states and nothing else", () => {
  assert.equal(isJobState("pending"), true);
  assert.equal(isJobState("dead"), true);
  assert.equal(isJobState("running"), false);
  assert.equal(isJobState("Pending"), false);
  assert.equal(isJobState(""), false);
});

Deno.test("canTransition() lets a worker claim pending and failed jobs", () => {
  assert.equal(canTransition("pending", "processing"), true);
  assert.equal(canTransition("failed", "processing"), true);
});

Deno.test("canTransition() allows every outcome of a run", () => {
  assert.equal(canTransition("processing", "completed"), true);
  assert.equal(canTransition("processing", "failed"), true);
  assert.equal(canTransition("processing", "dead"), true);
  assert.equal(canTransition("processing", "pending"), true);
});

Deno.test("canTransition() allows dead to pending, the move of dlq retry", () => {
  assert.equal(canTransition("dead", "pending"), true);
  assert.deepEqual(TRANSITIONS.revive, { from: ["dead"], to: "pending" });
});

Deno.test("canTransition() refuses completed to processing", () => {
  assert.equal(canTransition("completed", "processing"), false);
});

Deno.test("canTransition() lets a completed job leave only by a retry, to pending", () => {
  for (const to of JOB_STATES) {
    assert.equal(canTransition("completed", to), to === "pending", to);
  }
});

Deno.test("canTransition() lets a blocked job go only to pending or, after a dead dependency, dead", () => {
  for (const to of JOB_STATES) {
    assert.equal(canTransition("blocked", to), to === "pending" || to === "dead", to);
  }
});

Deno.test("canTransition() refuses moves that skip running the job", () => {
  assert.equal(canTransition("pending", "completed"), false);
  assert.equal(canTransition("pending", "dead"), false);
  assert.equal(canTransition("failed", "completed"), false);
  assert.equal(canTransition("failed", "dead"), false);
  assert.equal(canTransition("dead", "processing"), false);
});

Deno.test("canTransition() refuses staying in the same state", () => {
  for (const state of JOB_STATES) assert.equal(canTransition(state, state), false, state);
});

Deno.test("canTransition() agrees with the transition table for every pair", () => {
  const allowed = new Set<string>();
  for (const t of Object.values(TRANSITIONS)) {
    for (const from of t.from) allowed.add(`${from}>${t.to}`);
  }
  for (const from of JOB_STATES) {
    for (const to of JOB_STATES) {
      assert.equal(canTransition(from, to), allowed.has(`${from}>${to}`), `${from} to ${to}`);
    }
  }
  assert.equal(allowed.size, 11);
});

Deno.test("stateAfterFailure() retries while runs remain", () => {
  assert.equal(stateAfterFailure(1, 3), "failed");
  assert.equal(stateAfterFailure(3, 3), "failed");
});

Deno.test("stateAfterFailure() buries the job once retries are used up", () => {
  assert.equal(stateAfterFailure(4, 3), "dead");
  assert.equal(stateAfterFailure(10, 3), "dead");
});

Deno.test("stateAfterFailure() with max_retries 0 buries after the first run", () => {
  assert.equal(stateAfterFailure(1, 0), "dead");
});

Deno.test("stateAfterFailure() with max_retries 2 allows at most 3 runs", () => {
  let attempts = 0;
  let state: JobState = "pending";
  while (state !== "dead") {
    attempts++;
    assert.ok(attempts <= 10, "the job never died");
    state = stateAfterFailure(attempts, 2);
  }
  assert.equal(attempts, 3);
});

Deno.test("stateAfterFailure() results are states a running job may move to", () => {
  for (let attempts = 1; attempts <= 5; attempts++) {
    assert.ok(canTransition("processing", stateAfterFailure(attempts, 2)));
  }
});
