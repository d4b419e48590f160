/**
 * Black-box tests of how the CLI refuses things: exit codes, one-line
 * messages, no changes after a refusal, databases it must not touch; and of
 * `--help` and `--version`.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  assertFileUnchanged,
  assertQueueUnchanged,
  assertRefused,
  cli,
  cliOk,
  listJobs,
  queueExists,
  queueSnapshot,
  showJob,
  sqliteOnlyTest,
  withQueue,
} from "./helpers.ts";

/** Names of the entries of a folder, sorted. */
async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.toSorted();
}

/** Commands that would each read or change a queue. */
const QUEUE_COMMANDS = [
  ["list"],
  ["status"],
  ["enqueue", "echo hi"],
  ["show", "job1"],
  ["dlq", "retry", "--all"],
  ["config", "set", "max-retries", "1"],
];

/** Asserts that every queue command refuses `db` with exit 1 and leaves the folder as it was. */
async function assertUntouched(db: string, dir: string, what: string): Promise<void> {
  const before = await entries(dir);
  const bytes = await Deno.readFile(db).catch(() => undefined);
  for (const args of QUEUE_COMMANDS) {
    assertRefused(await cli(args, { db }), 1, `${what}: ${args.join(" ")}`);
  }
  assert.deepEqual(await entries(dir), before, `${what}: no file was added beside it`);
  if (bytes) await assertFileUnchanged(db, bytes, `${what}: the file is unchanged`);
}

Deno.test("usage errors exit 2 with one line on stderr and create no database", () =>
  withQueue(async ({ db, dir }) => {
    // Bare `queuectl` and a bare group print their usage instead: tests/cli_help_test.ts.
    const usageErrors: string[][] = [
      ["bogus"],
      ["help", "bogus"],
      ["--bogus", "list"],
      ["list", "--bogus"],
      ["list", "extra"],
      ["enqueue"],
      ["enqueue", "{bad json"],
      ["enqueue", '{"command":"echo hi"} trailing'],
      ["enqueue", ""],
      ["enqueue", "   "],
      ["enqueue", '{"command":""}'],
      ["enqueue", '{"id":"job1"}'],
      ["enqueue", "echo", "hi"],
      ["enqueue", '{"command":"true","max_retries":-1}'],
      ["enqueue", '{"command":"true","priority":"high"}'],
      ["enqueue", "true", "--max-retries", "-1"],
      ["enqueue", "true", "--max-retries", "x"],
      ["enqueue", "true", "--max-retries", "1.5"],
      ["enqueue", "true", "--priority", "x"],
      ["enqueue", "true", "--priority", "-1"],
      ["enqueue", "true", "--delay", "5x"],
      ["enqueue", "true", "--delay", "-5s"],
      ["enqueue", "true", "--timeout", "5x"],
      ["enqueue", "true", "--run-at", "tomorrow"],
      ["enqueue", "true", "--delay", "1s", "--run-at", "2030-01-01T00:00:00Z"],
      ["enqueue", "true", "--id"],
      ["list", "--limit", "-5"],
      ["list", "--limit", "x"],
      ["list", "--state", "bogus"],
      ["dlq", "list", "--limit", "-1"],
      ["dlq", "retry"],
      ["show"],
      ["logs"],
      ["worker", "bogus"],
      ["worker", "start", "--count", "0"],
      ["worker", "start", "--count", "x"],
      ["config", "get", "bogus"],
      ["config", "set", "bogus", "1"],
      ["config", "set", "backoff-base", "0.5"],
      ["--db"],
    ];
    for (const args of usageErrors) {
      const what = `queuectl ${args.join(" ")}`;
      assertRefused(await cli(args, { db }), 2, what);
      assert.deepEqual(await entries(dir), [], `${what}: created no database`);
      assert.equal(await queueExists(db), false, `${what}: created no database`);
    }
  }));

Deno.test("worker start --count names its real rule, 1 to 256, for every value it refuses", () =>
  withQueue(async ({ db }) => {
    for (const count of ["-1", "0", "257", "1.5", "x"]) {
      const refused = await cli(["worker", "start", "--count", count], { db });
      assertRefused(refused, 2, `--count ${count}`);
      assert.equal(
        refused.stderr,
        `queuectl: --count: '${count}' is not a whole number from 1 to 256\n`,
      );
    }
  }));

Deno.test("a command given to enqueue unquoted is refused, with the user's own words quoted", () =>
  withQueue(async ({ db }) => {
    const cases: [string[], string][] = [
      [["ls", "-l"], "'ls -l'"],
      [["sleep", "10"], "'sleep 10'"],
      [["echo", "it's", "-n"], `"echo it's -n"`],
    ];
    for (const [words, quoted] of cases) {
      const refused = await cli(["enqueue", ...words], { db });
      assertRefused(refused, 2, words.join(" "));
      assert.equal(
        refused.stderr,
        `queuectl: enqueue takes one spec: quote the whole command, e.g. queuectl enqueue ${quoted}\n`,
      );
    }
    // An option of enqueue's own that is mistyped still gets its suggestion.
    const typo = await cli(["enqueue", "--timout", "5s", "true"], { db });
    assert.match(typo.stderr, /did you mean '--timeout'\?/);
  }));

Deno.test("usage errors leave an existing queue unchanged", () =>
  withQueue(async ({ db }) => {
    await cliOk(["enqueue", "--id", "job1", "true"], { db });
    const listed = await cliOk(["list", "--json"], { db });
    const before = await queueSnapshot(db);
    const usageErrors: string[][] = [
      ["enqueue", "{bad json"],
      ["enqueue", "echo hi", "--priority", "x"],
      ["enqueue", "echo hi", "--bogus"],
      ["enqueue", "--id", "job2", ""],
      ["config", "set", "backoff-base", "0.5"],
      ["dlq", "retry"],
    ];
    for (const args of usageErrors) {
      assertRefused(await cli(args, { db }), 2, `queuectl ${args.join(" ")}`);
    }
    await assertQueueUnchanged(db, before, "the database is unchanged");
    assert.equal(await cliOk(["list", "--json"], { db }), listed);
    assert.equal(await cliOk(["config", "get", "backoff-base"], { db }), "2\n");
  }));

Deno.test("runtime failures exit 1 with one line on stderr and change nothing", () =>
  withQueue(async ({ db }) => {
    await cliOk(["enqueue", "--id", "job1", "echo first"], { db });
    const listed = await cliOk(["list", "--json"], { db });

    for (const args of [["show", "nope"], ["logs", "nope"], ["dlq", "retry", "nope"]]) {
      const result = await cli(args, { db });
      assertRefused(result, 1, `queuectl ${args.join(" ")}`);
      assert.match(result.stderr, /nope/, "the message names the missing job");
    }
    const duplicate = await cli(["enqueue", "--id", "job1", "echo second"], { db });
    assertRefused(duplicate, 1, "an id that is taken");
    assert.match(duplicate.stderr, /job1/);
    assertRefused(
      await cli(["enqueue", '{"id":"job1","command":"echo third"}'], { db }),
      1,
      "an id that is taken, in JSON",
    );

    assert.equal(await cliOk(["list", "--json"], { db }), listed);
    assert.equal((await showJob(db, "job1")).command, "echo first");
  }));

sqliteOnlyTest(
  "a file that is not a SQLite database is refused and left byte for byte unchanged",
  () =>
    withQueue(async ({ db, dir }) => {
      await Deno.writeTextFile(db, "these are my notes, not a database\n".repeat(100));
      await assertUntouched(db, dir, "a text file");

      const random = crypto.getRandomValues(new Uint8Array(4096));
      await Deno.writeFile(db, random);
      await assertUntouched(db, dir, "random bytes");
    }),
);

sqliteOnlyTest(
  "a one-byte file that is not a SQLite database is refused and left unchanged",
  () =>
    withQueue(async ({ db, dir }) => {
      // What `echo > queue.db` leaves behind.
      await Deno.writeTextFile(db, "\n");
      await assertUntouched(db, dir, "a file holding one newline");
    }),
);

sqliteOnlyTest(
  "a SQLite database of another program is refused and left unchanged",
  () =>
    withQueue(async ({ db, dir }) => {
      const other = new DatabaseSync(db);
      other.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
      other.exec("INSERT INTO notes (body) VALUES ('keep me')");
      other.close();
      await assertUntouched(db, dir, "another program's database");
    }),
);

Deno.test("a directory, or a path under a regular file, is refused as the database", () =>
  withQueue(async ({ dir }) => {
    const folder = `${dir}/folder`;
    await Deno.mkdir(folder);
    await assertUntouched(folder, folder, "a directory");

    const file = `${dir}/file.txt`;
    await Deno.writeTextFile(file, "plain text\n");
    await assertUntouched(`${file}/queue.db`, dir, "a path under a regular file");
    assert.equal(await Deno.readTextFile(file), "plain text\n");
  }));

Deno.test("an empty --db is refused as bad input, not taken for the current directory", () =>
  withQueue(async ({ dir }) => {
    for (
      const args of [["--db", "", "status"], ["--db=", "list"], ["enqueue", "true", "--db", ""]]
    ) {
      const result = await cli(args, { cwd: dir });
      assertRefused(result, 2, args.join(" "));
      assert.equal(result.stderr, "queuectl: --db: the path is empty\n", args.join(" "));
    }
    assert.deepEqual(await entries(dir), [], "nothing was created");
  }));

Deno.test("--help and --version print and exit 0 without opening a database", () =>
  withQueue(async ({ db, dir }) => {
    const help = await cli(["--help"], { db });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: queuectl/);
    for (
      const command of ["enqueue", "list", "show", "logs", "status", "worker", "dlq", "config"]
    ) {
      assert.match(help.stdout, new RegExp(`^\\s+${command}\\b`, "m"), `--help lists ${command}`);
    }
    assert.equal((await cli(["-h"], { db })).stdout, help.stdout);
    assert.equal((await cli(["help"], { db })).stdout, help.stdout);

    const version = await cli(["--version"], { db });
    assert.equal(version.code, 0);
    // The version has one source, deno.json; the runtime and target tell builds apart.
    const { version: configured } = JSON.parse(
      await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
    );
    assert.match(configured, /^\d+\.\d+\.\d+\S*$/);
    assert.equal(
      version.stdout,
      `queuectl ${configured} (deno ${Deno.version.deno}, ${Deno.build.target})\n`,
    );
    assert.equal((await cli(["-V"], { db })).stdout, version.stdout);
    assert.deepEqual(await entries(dir), [], "no database was created");
    assert.equal(await queueExists(db), false, "no database was created");
  }));

Deno.test("every command has --help, and queuectl help <command> prints the same", () =>
  withQueue(async ({ db, dir }) => {
    const commands = [
      ["enqueue"],
      ["list"],
      ["show"],
      ["logs"],
      ["status"],
      ["worker", "start"],
      ["worker", "stop"],
      ["dlq", "list"],
      ["dlq", "retry"],
      ["config", "get"],
      ["config", "set"],
      ["config", "list"],
    ];
    for (const words of commands) {
      const name = words.join(" ");
      const result = await cli([...words, "--help"], { db });
      assert.equal(result.code, 0, `${name} --help`);
      assert.match(result.stdout, new RegExp(`Usage: queuectl ${name}\\b`), `${name} --help`);
      assert.equal(result.stderr, "", `${name} --help`);
    }
    for (const group of ["worker", "dlq", "config"]) {
      const result = await cli([group, "--help"], { db });
      assert.equal(result.code, 0, `${group} --help`);
      assert.match(result.stdout, /Usage/, `${group} --help`);
    }

    const enqueueHelp = await cliOk(["enqueue", "--help"], { db });
    assert.equal(await cliOk(["help", "enqueue"], { db }), enqueueHelp);
    for (
      const flag of ["--id", "--max-retries", "--priority", "--delay", "--run-at", "--timeout"]
    ) {
      assert.ok(enqueueHelp.includes(flag), `enqueue --help names ${flag}`);
    }
    assert.ok(enqueueHelp.includes("--cwd") && enqueueHelp.includes("--file"));
    assert.equal(
      await cliOk(["help", "dlq", "retry"], { db }),
      await cliOk(["dlq", "retry", "-h"], { db }),
    );
    assert.deepEqual(await entries(dir), [], "no database was created");
    assert.equal(await queueExists(db), false, "no database was created");
    assert.deepEqual(await listJobs(db), [], "the queue opens fine afterwards");
  }));
