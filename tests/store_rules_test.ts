/**
 * The backend-neutral rules of lib/store/rules.ts: a new job's initial
 * state, waiting on start over, the kill override of an outcome, and the
 * cascade to dependents, the lease clock. The store tests check the same rules end to end.
 */

import assert from "node:assert/strict";
import { QueueError } from "../lib/errors.ts";
import { canTransition, JOB_STATES, TRANSITIONS } from "../lib/states.ts";
import {
  ABANDON,
  advanceLeaseClock,
  cascadeOnDelete,
  cascadeOnEnd,
  DEPENDENCY_MET,
  type DependencyState,
  initialState,
  leaseClockNow,
  mustWaitOnStartOver,
  outcomeTransition,
  RELEASE,
  STALL_GAP_MS,
} from "../lib/store/rules.ts";

/** initialState() of job `j` over these dependencies; `looked` collects the ids looked up. */
function initialOf(dependencies: DependencyState[], looked: string[] = []) {
  const states = new Map(dependencies.map((d) => [d.id, d.state]));
  return initialState("j", dependencies.map((d) => d.id), (id) => {
    looked.push(id);
    return states.get(id) ?? null;
  });
}

Deno.test("initialState(): pending, blocked, or dead after a dead job", () => {
  assert.deepEqual(initialOf([]), { state: "pending", lastError: null });
  assert.deepEqual(initialOf([{ id: "a", state: "completed" }]), {
    state: "pending",
    lastError: null,
  });
  for (const state of ["blocked", "pending", "processing", "failed"] as const) {
    assert.deepEqual(initialOf([{ id: "a", state: "completed" }, { id: "b", state }]), {
      state: "blocked",
      lastError: null,
    });
  }
  const looked: string[] = [];
  const dead = [
    { id: "a", state: "pending" as const },
    { id: "b", state: "dead" as const },
    { id: "c", state: "completed" as const },
  ];
  assert.deepEqual(initialOf(dead, looked), {
    state: "dead",
    lastError: "runs after 'b', which is dead",
  });
  assert.deepEqual(looked, ["a", "b"], "no lookup past the dead one");
});

Deno.test("initialState() refuses a dependency that does not exist, unless a dead one came first", () => {
  assert.throws(
    () => initialOf([{ id: "a", state: "pending" }, { id: "ghost", state: null }]),
    (error) => error instanceof QueueError && /'ghost', which does not exist/.test(error.message),
  );
  assert.equal(initialOf([{ id: "a", state: "dead" }, { id: "ghost", state: null }]).state, "dead");
});

Deno.test("mustWaitOnStartOver(): waits for unfinished dependencies, refuses a dead one", () => {
  assert.equal(mustWaitOnStartOver("j", []), false);
  assert.equal(mustWaitOnStartOver("j", [{ id: "a", state: "completed" }]), false);
  assert.equal(mustWaitOnStartOver("j", [{ id: "a", state: "pending" }]), true);
  assert.throws(
    () => mustWaitOnStartOver("j", [{ id: "a", state: "pending" }, { id: "d", state: "dead" }]),
    /job 'j' runs after 'd', which is dead; retry 'd' too/,
  );
});

Deno.test("outcomeTransition(): a kill with mode dead sends a failed run to the DLQ", () => {
  assert.equal(outcomeTransition("completed", null), TRANSITIONS.complete);
  assert.equal(outcomeTransition("completed", "dead"), TRANSITIONS.complete);
  assert.equal(outcomeTransition("failed", null), TRANSITIONS.scheduleRetry);
  assert.equal(outcomeTransition("failed", "retry"), TRANSITIONS.scheduleRetry);
  assert.equal(outcomeTransition("failed", "dead"), TRANSITIONS.bury);
  assert.equal(outcomeTransition("dead", null), TRANSITIONS.bury);
  assert.equal(outcomeTransition("dead", "retry"), TRANSITIONS.bury);
});

Deno.test("cascades: completion releases, death and deletion unfinished abandon", () => {
  const onEnd = Object.fromEntries(JOB_STATES.map((s) => [s, cascadeOnEnd(s)]));
  assert.deepEqual(onEnd, {
    blocked: "none",
    pending: "none",
    processing: "none",
    completed: "release",
    failed: "none",
    dead: "abandon",
  });
  const onDelete = Object.fromEntries(JOB_STATES.map((s) => [s, cascadeOnDelete(s)]));
  assert.deepEqual(onDelete, {
    blocked: "abandon",
    pending: "abandon",
    processing: "abandon",
    completed: "none",
    failed: "abandon",
    dead: "abandon",
  });
  // An abandoned job is dead, so the jobs after it are abandoned in turn.
  assert.equal(cascadeOnEnd(ABANDON.to), "abandon");
  assert.equal(DEPENDENCY_MET, "completed");
  assert.ok(canTransition("blocked", RELEASE.to) && canTransition("blocked", ABANDON.to));
});

Deno.test("advanceLeaseClock(): a gap longer than a stall is left out; an older stamp keeps its age", () => {
  // The first beat ever starts the clock at 0.
  const first = advanceLeaseClock({ beatAt: 0, stalledMs: 0 }, 10_000);
  assert.deepEqual(first, { clock: { beatAt: 10_000, stalledMs: 10_000 }, live: 0 });
  const next = advanceLeaseClock(first.clock, 11_000);
  assert.deepEqual(next, { clock: { beatAt: 11_000, stalledMs: 10_000 }, live: 1_000 });
  // A gap of a stall and more counts for nobody: the beat after it is 0 later on the clock.
  const afterStall = advanceLeaseClock(next.clock, 11_000 + STALL_GAP_MS + 1);
  assert.equal(afterStall.live, next.live);
  assert.equal(leaseClockNow(afterStall.clock), afterStall.live);
  // A registration stamped before the latest beat never moves the clock back.
  const older = advanceLeaseClock(afterStall.clock, 12_000);
  assert.equal(older.clock.beatAt, afterStall.clock.beatAt);
  assert.equal(older.live, 12_000 - afterStall.clock.stalledMs);
});
