import assert from "node:assert/strict";
import { closestWords, editDistance } from "../lib/cli/suggest.ts";

Deno.test("editDistance() counts insertions, deletions, substitutions and swaps as one edit each", () => {
  assert.equal(editDistance("status", "status"), 0);
  assert.equal(editDistance("stauts", "status"), 1, "a swap of neighbours");
  assert.equal(editDistance("timout", "timeout"), 1, "an insertion");
  assert.equal(editDistance("listt", "list"), 1, "a deletion");
  assert.equal(editDistance("lust", "list"), 1, "a substitution");
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("abc", ""), 3);
  assert.equal(editDistance("bogus", "logs"), 2);
  assert.equal(editDistance("ca", "abc"), 3, "optimal string alignment: no edit of a swapped pair");
});

Deno.test("closestWords() offers the nearest candidates within a third of the word's length", () => {
  const commands = ["enqueue", "list", "show", "status", "stats", "top", "pause", "purge"];
  assert.deepEqual(closestWords("stauts", commands), ["status"], "same length wins a tie");
  assert.deepEqual(closestWords("lsit", commands), ["list"]);
  assert.deepEqual(closestWords("LIST", commands), ["list"], "case is ignored");
  assert.deepEqual(closestWords("bogus", commands), [], "two edits are too many for five letters");
  assert.deepEqual(closestWords("x", commands), []);
  assert.deepEqual(closestWords("", commands), []);
  assert.deepEqual(closestWords("lust", ["list", "lost", "last"]), ["list", "lost", "last"]);
});

Deno.test("closestWords() offers up to three names that a word of two letters or more begins", () => {
  const commands = ["enqueue", "list", "show", "status", "stats", "stop", "top"];
  assert.deepEqual(closestWords("enq", commands), ["enqueue"]);
  assert.deepEqual(closestWords("st", commands), ["status", "stats", "stop"]);
  assert.deepEqual(closestWords("s", commands), [], "one letter is no prefix");
  assert.deepEqual(closestWords("sta", [...commands, "start"]), ["status", "stats", "start"]);
  assert.deepEqual(
    closestWords("st", [...commands, "start"]),
    [],
    "four names sharing the prefix are too many, and none is near",
  );
});
