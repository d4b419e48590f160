import assert from "node:assert/strict";
import { type OptionSpecs, parseArgs, parseStateList } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";

const SPECS: OptionSpecs = {
  db: { type: "string", value: "PATH", description: "the database" },
  "max-retries": { type: "string", value: "N", description: "retries" },
  count: { type: "string", short: "n", value: "N", description: "how many" },
  json: { type: "boolean", description: "print JSON" },
  help: { type: "boolean", short: "h", description: "show help" },
};

Deno.test("parseArgs() reads an option value from the next argument", () => {
  const parsed = parseArgs(["--db", "q.db"], SPECS);
  assert.deepEqual(parsed, { options: { db: "q.db" }, positionals: [] });
});

Deno.test("parseArgs() reads an option value after an equals sign", () => {
  assert.equal(parseArgs(["--db=q.db"], SPECS).options.db, "q.db");
  assert.equal(parseArgs(["--db=a=b"], SPECS).options.db, "a=b");
  assert.equal(parseArgs(["--db="], SPECS).options.db, "");
});

Deno.test("parseArgs() sets boolean flags to true and leaves absent ones out", () => {
  const parsed = parseArgs(["--json"], SPECS);
  assert.equal(parsed.options.json, true);
  assert.equal(parsed.options.help, undefined);
  assert.equal("help" in parsed.options, false);
});

Deno.test("parseArgs() reads a short alias for a flag", () => {
  assert.deepEqual(parseArgs(["-h"], SPECS), { options: { help: true }, positionals: [] });
});

Deno.test("parseArgs() reads a short alias for an option with a value", () => {
  assert.equal(parseArgs(["-n", "5"], SPECS).options.count, "5");
});

Deno.test("parseArgs() refuses an unknown long option", () => {
  assert.throws(() => parseArgs(["--nope"], SPECS), UsageError);
  assert.throws(() => parseArgs(["--nope=1"], SPECS), UsageError);
  assert.throws(() => parseArgs(["--JSON"], SPECS), UsageError);
});

Deno.test("parseArgs() refuses an unknown short option", () => {
  assert.throws(() => parseArgs(["-z"], SPECS), UsageError);
});

Deno.test("parseArgs() refuses option names inherited from Object.prototype", () => {
  for (const name of ["constructor", "toString", "hasOwnProperty", "__proto__"]) {
    assert.throws(() => parseArgs([`--${name}`, "x"], SPECS), UsageError, name);
  }
});

Deno.test("parseArgs() refuses an option with no value at the end", () => {
  assert.throws(
    () => parseArgs(["list", "--db"], SPECS),
    (error) => error instanceof UsageError && /--db/.test(error.message),
  );
});

Deno.test("parseArgs() refuses an option followed by another option instead of a value", () => {
  assert.throws(() => parseArgs(["--db", "--json"], SPECS), UsageError);
  assert.throws(() => parseArgs(["--db", "--"], SPECS), UsageError);
});

Deno.test("parseArgs() refuses a value given to a flag with an equals sign", () => {
  assert.throws(() => parseArgs(["--json=true"], SPECS), UsageError);
  assert.throws(() => parseArgs(["--json="], SPECS), UsageError);
});

Deno.test("parseArgs() does not take the next argument as a flag's value", () => {
  const parsed = parseArgs(["--json", "true"], SPECS);
  assert.deepEqual(parsed, { options: { json: true }, positionals: ["true"] });
});

Deno.test("parseArgs() treats everything after -- as positionals", () => {
  const parsed = parseArgs(["--json", "--", "--db", "-h", "x"], SPECS);
  assert.deepEqual(parsed, { options: { json: true }, positionals: ["--db", "-h", "x"] });
});

Deno.test("parseArgs() accepts a value starting with one dash, such as -1", () => {
  assert.equal(parseArgs(["--max-retries", "-1"], SPECS).options["max-retries"], "-1");
  assert.equal(parseArgs(["-n", "-5"], SPECS).options.count, "-5");
  assert.equal(parseArgs(["--db", "-"], SPECS).options.db, "-");
});

Deno.test("parseArgs() keeps positionals in order around options", () => {
  const parsed = parseArgs(["enqueue", "--db", "q.db", "echo hi", "--json", "extra"], SPECS);
  assert.deepEqual(parsed, {
    options: { db: "q.db", json: true },
    positionals: ["enqueue", "echo hi", "extra"],
  });
});

Deno.test("parseArgs() keeps a lone dash as a positional", () => {
  assert.deepEqual(parseArgs(["-"], SPECS).positionals, ["-"]);
});

Deno.test("parseArgs() keeps the last value of an option given twice", () => {
  assert.equal(parseArgs(["--db", "a", "--db=b"], SPECS).options.db, "b");
});

Deno.test("parseArgs() returns nothing for no arguments", () => {
  assert.deepEqual(parseArgs([], SPECS), { options: {}, positionals: [] });
});

Deno.test("parseStateList() reads one state or several, trimmed, duplicates dropped", () => {
  assert.deepEqual(parseStateList("dead", ["dead", "failed"], "list"), ["dead"]);
  assert.deepEqual(parseStateList("dead, failed,dead", ["dead", "failed"], "list"), [
    "dead",
    "failed",
  ]);
});

Deno.test("parseStateList() tells an unknown state from one the command cannot take", () => {
  assert.throws(
    () => parseStateList("dead,bogus", ["dead"], "purge"),
    (error) =>
      error instanceof UsageError && /unknown state 'bogus' \(known: blocked,/.test(error.message),
  );
  assert.throws(
    () => parseStateList("dead,", ["dead"], "purge"),
    (error) => error instanceof UsageError && /unknown state ''/.test(error.message),
  );
  assert.throws(
    () => parseStateList("dead,pending", ["dead", "completed"], "purge"),
    (error) =>
      error instanceof UsageError &&
      error.message === "--state: cannot purge 'pending' jobs (only dead, completed)",
  );
});

Deno.test("parseArgs() keeps every value of an option that may be repeated, in order", () => {
  const specs: OptionSpecs = {
    ...SPECS,
    env: { type: "string", multiple: true, value: "NAME=VALUE", description: "a variable" },
  };
  const parsed = parseArgs(
    ["--env", "A=1", "x", "--env=B=2=3", "--db", "q.db", "--env", "A="],
    specs,
  );
  assert.deepEqual(parsed.lists, { env: ["A=1", "B=2=3", "A="] });
  assert.deepEqual(parsed.positionals, ["x"]);
  assert.equal(parseArgs(["--db", "q.db"], specs).lists, undefined);
});
