/**
 * Database faults: a database its user may only read, a file replaced by
 * garbage or damaged, missing folders, a database locked by another process,
 * and one written by a newer queuectl. Each must end in the right exit code
 * with one line on stderr, and leave the stored data as it was.
 *
 * The read-only cases need root: one runs the CLI as user `nobody` (through
 * `setpriv`), one makes the file immutable (`chattr +i`); each is skipped
 * where that is not possible.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SCHEMA_VERSION } from "../lib/store/sqlite_open.ts";
import {
  assertFileUnchanged,
  assertRefused,
  cli,
  cliOk,
  type CliResult,
  denoDir,
  enqueueIn,
  exitWithin,
  killProcess,
  MAIN,
  mapLimit,
  pathExists,
  processExists,
  readIfExists,
  SeededRandom,
  showJob,
  startWorker,
  waitFor,
  withQueue,
} from "./helpers.ts";

const decoder = new TextDecoder();
const SEED = 4242;

/** Names of the entries of a folder, sorted. */
async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.toSorted();
}

/** Commands that only read the queue. */
const READS: string[][] = [
  ["list", "--json", "--limit", "0"],
  ["status", "--json"],
  ["show", "done", "--json"],
  ["logs", "done"],
  ["config", "list", "--json"],
  ["dlq", "list", "--json"],
];

/** Commands that must write to the queue seeded by {@linkcode seedQueue}. */
function writes(dir: string): string[][] {
  return [
    ["enqueue", "echo new"],
    ["enqueue", "--file", `${dir}/more.jsonl`],
    ["config", "set", "max-retries", "9"],
    ["dlq", "retry", "--all"],
    ["purge", "--older-than", "0"],
    ["worker", "start", "--drain"],
  ];
}

/**
 * Fills a queue with a completed job (with output), a dead one, pending ones
 * and a changed setting; writes `more.jsonl` beside it for `enqueue --file`.
 */
async function seedQueue(db: string, dir: string): Promise<void> {
  await cliOk(["enqueue", "--id", "done", "--priority", "9", "echo done; echo oops >&2"], { db });
  await cliOk(["enqueue", '{"id":"dead","command":"exit 3","max_retries":0,"priority":8}'], {
    db,
  });
  await cliOk(["worker", "start", "--drain"], { db });
  const pending = ["echo 😀 first", "echo second", "sleep 1"].map((command, index) =>
    JSON.stringify({ id: `pending-${index}`, command })
  );
  await Deno.writeTextFile(`${dir}/pending.jsonl`, pending.join("\n") + "\n");
  await cliOk(["enqueue", "--file", `${dir}/pending.jsonl`], { db });
  await cliOk(["config", "set", "backoff-base", "3"], { db });
  await Deno.writeTextFile(`${dir}/more.jsonl`, '{"command":"true"}\n{"command":"false"}\n');
  assert.equal((await showJob(db, "done")).state, "completed");
  assert.equal((await showJob(db, "dead")).state, "dead");
}

/** What every read command prints, as root, to compare before and after. */
async function snapshot(db: string): Promise<Map<string, CliResult>> {
  const results = await mapLimit(READS, 3, (args) => cli(args, { db }));
  for (const [index, result] of results.entries()) {
    assert.equal(result.code, 0, `${READS[index].join(" ")}: ${result.stderr}`);
  }
  return new Map(READS.map((args, index) => [args.join(" "), results[index]]));
}

function assertSameQueue(
  actual: Map<string, CliResult>,
  expected: Map<string, CliResult>,
  what: string,
) {
  for (const [command, result] of expected) {
    assert.equal(actual.get(command)?.stdout, result.stdout, `${what}: ${command}`);
  }
}

/**
 * Checks a read on a database its user cannot write: it either works and
 * prints what it printed before, or is refused with exit 1 and one line.
 */
function assertReadOrRefused(
  result: CliResult,
  expected: CliResult | undefined,
  what: string,
): void {
  if (result.code === 0) {
    assert.equal(result.stdout, expected?.stdout, `${what}: printed what it printed before`);
  } else assertRefused(result, 1, what);
}

// ---------------------------------------------------------------------------
// Running the CLI as another user.

const IS_ROOT = Deno.uid() === 0;
const AS_NOBODY = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"];

async function succeeds(command: string, args: string[]): Promise<boolean> {
  try {
    const output = await new Deno.Command(command, { args, stdout: "null", stderr: "null" })
      .output();
    return output.success;
  } catch {
    return false; // Not installed.
  }
}

/** Whether `nobody` can run this checkout: root, setpriv, and readable files. */
const CAN_RUN_AS_NOBODY = IS_ROOT && await succeeds("setpriv", [
  ...AS_NOBODY,
  "sh",
  "-c",
  'test -r "$1" && test -x "$2"',
  "sh",
  MAIN,
  Deno.execPath(),
]);

/** Whether files can be made immutable here: root, chattr, and a file system that has the flag. */
const CAN_CHATTR = IS_ROOT && await (async () => {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-chattr-probe-" });
  const file = `${dir}/probe`;
  try {
    await Deno.writeTextFile(file, "probe");
    if (!await succeeds("chattr", ["+i", file])) return false;
    await succeeds("chattr", ["-i", file]);
    return true;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
})();

/**
 * Prepares `${dir}/deno-dir`, a Deno cache `nobody` may use, seeded with the
 * npm packages of this run's cache so that nothing is downloaded.
 */
async function denoDirForNobody(dir: string): Promise<string> {
  const target = `${dir}/deno-dir`;
  await Deno.mkdir(target);
  const npm = `${await denoDir()}/npm`;
  if (await pathExists(npm)) {
    assert.ok(await succeeds("cp", ["-R", npm, `${target}/npm`]), "copy the npm cache");
  }
  assert.ok(await succeeds("chown", ["-R", "nobody:nogroup", target]), "chown the Deno cache");
  return target;
}

/** Runs `queuectl --db <db> <args>` as user `nobody`, killing it after 30 s. */
async function cliAsNobody(
  args: string[],
  db: string,
  cwd: string,
  denoDirPath: string,
): Promise<CliResult> {
  const child = new Deno.Command("setpriv", {
    args: [...AS_NOBODY, Deno.execPath(), "run", "-A", MAIN, "--db", db, ...args],
    cwd,
    env: { NO_COLOR: "1", DENO_DIR: denoDirPath, HOME: denoDirPath },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    const output = await child.output();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr).replace(/^Download https?:\/\/\S+\n/gm, ""),
    };
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// Read-only databases.

Deno.test({
  name:
    "as a user who cannot write its folder: writes exit 1, reads work or exit 1, nothing changes",
  ignore: !CAN_RUN_AS_NOBODY,
  fn: () =>
    withQueue(async ({ dir }) => {
      // The queue lives in a folder owned by root that others may read and enter.
      await Deno.chmod(dir, 0o755);
      const folder = `${dir}/ro`;
      await Deno.mkdir(folder, { mode: 0o755 });
      await Deno.chmod(folder, 0o755);
      const db = `${folder}/queue.db`;
      await seedQueue(db, dir);
      await Deno.chmod(db, 0o644);
      await Deno.chmod(`${dir}/more.jsonl`, 0o644);
      const denoDirPath = await denoDirForNobody(dir);
      const before = await snapshot(db);
      const bytes = await Deno.readFile(db);
      const names = await entries(folder);

      await mapLimit(writes(dir), 3, async (args) => {
        const result = await cliAsNobody(args, db, folder, denoDirPath);
        assertRefused(result, 1, `as nobody: ${args.join(" ")}`);
      });
      await mapLimit(READS, 3, async (args) => {
        const result = await cliAsNobody(args, db, folder, denoDirPath);
        assertReadOrRefused(result, before.get(args.join(" ")), `as nobody: ${args.join(" ")}`);
      });

      await assertFileUnchanged(db, bytes, "the database file is unchanged");
      assert.deepEqual(await entries(folder), names, "no file was added beside it");
      assertSameQueue(await snapshot(db), before, "as root afterwards");
    }),
});

Deno.test({
  name: "as a user who may write the folder but not the file: writes exit 1 and write nothing",
  ignore: !CAN_RUN_AS_NOBODY,
  fn: () =>
    withQueue(async ({ dir }) => {
      await Deno.chmod(dir, 0o755);
      const folder = `${dir}/shared`;
      await Deno.mkdir(folder);
      const db = `${folder}/queue.db`;
      await seedQueue(db, dir);
      await Deno.chmod(db, 0o644);
      await Deno.chmod(`${dir}/more.jsonl`, 0o644);
      assert.ok(await succeeds("chown", ["nobody:nogroup", folder]));
      const denoDirPath = await denoDirForNobody(dir);
      const before = await snapshot(db);
      const bytes = await Deno.readFile(db);
      const names = await entries(folder);

      for (const args of writes(dir)) {
        const result = await cliAsNobody(args, db, folder, denoDirPath);
        assertRefused(result, 1, `as nobody: ${args.join(" ")}`);
      }
      for (const args of READS) {
        const result = await cliAsNobody(args, db, folder, denoDirPath);
        assertReadOrRefused(result, before.get(args.join(" ")), `as nobody: ${args.join(" ")}`);
      }

      await assertFileUnchanged(db, bytes, "the database file is unchanged");
      // SQLite may leave its shared-memory index and an empty log behind; nothing was logged.
      for (const name of await entries(folder)) {
        assert.ok([...names, "queue.db-shm", "queue.db-wal"].includes(name), name);
        if (name === "queue.db-wal") {
          assert.equal((await Deno.stat(`${folder}/${name}`)).size, 0, "nothing was written");
        }
      }
      assertSameQueue(await snapshot(db), before, "as root afterwards");
    }),
});

Deno.test({
  name:
    "an immutable database file (chattr +i): writes exit 1, reads work or exit 1, nothing changes",
  ignore: !CAN_CHATTR,
  fn: () =>
    withQueue(async ({ db, dir }) => {
      await seedQueue(db, dir);
      const before = await snapshot(db);
      const bytes = await Deno.readFile(db);
      assert.ok(await succeeds("chattr", ["+i", db]), "chattr +i");
      try {
        await mapLimit(writes(dir), 3, async (args) => {
          assertRefused(await cli(args, { db }), 1, `immutable: ${args.join(" ")}`);
        });
        await mapLimit(READS, 3, async (args) => {
          const result = await cli(args, { db });
          assertReadOrRefused(result, before.get(args.join(" ")), `immutable: ${args.join(" ")}`);
        });
      } finally {
        await succeeds("chattr", ["-i", db]);
      }
      await assertFileUnchanged(db, bytes, "the database file is unchanged");
      assertSameQueue(await snapshot(db), before, "after chattr -i");
      // And the queue is writable again.
      assert.equal((await cli(["enqueue", "--id", "after", "true"], { db })).code, 0);
    }),
});

// ---------------------------------------------------------------------------
// Garbage and damage.

/** Runs every command on `db`; returns the results by command. */
async function runAll(db: string, dir: string): Promise<[string[], CliResult][]> {
  const commands = [...READS, ...writes(dir)];
  const results = await mapLimit(commands, 3, (args) => cli(args, { db }));
  return commands.map((args, index) => [args, results[index]]);
}

Deno.test("a database file replaced by garbage: every command exits 1 and the file stays as it is", () =>
  withQueue(async ({ db, dir }) => {
    await seedQueue(db, dir);
    const original = await Deno.readFile(db);
    const before = await snapshot(db);
    const rng = new SeededRandom(SEED);
    const header = new TextEncoder().encode("SQLite format 3\0");
    const garbage = rng.bytes(original.length);
    const headedGarbage = rng.bytes(original.length);
    headedGarbage.set(header);
    for (
      const [what, bytes] of [["random bytes", garbage], [
        "a SQLite header, then garbage",
        headedGarbage,
      ]] as const
    ) {
      await Deno.writeFile(db, bytes);
      const names = await entries(dir);
      for (const [args, result] of await runAll(db, dir)) {
        assertRefused(result, 1, `${what}: ${args.join(" ")}`);
      }
      await assertFileUnchanged(db, bytes, `${what}: the file is unchanged`);
      assert.deepEqual(await entries(dir), names, `${what}: no file was added beside it`);
    }
    // The real database put back is whole: nothing was left beside it to replay.
    await Deno.writeFile(db, original);
    assertSameQueue(await snapshot(db), before, "the original put back");
  }));

Deno.test("a damaged or truncated database: commands fail with exit 1 and one line, and write nothing", () =>
  withQueue(async ({ db, dir }) => {
    await seedQueue(db, dir);
    // Enough jobs for several pages of them.
    const many = Array.from(
      { length: 300 },
      (_, i) => JSON.stringify({ id: `bulk-${i}`, command: `echo ${"x".repeat(100)} ${i}` }),
    );
    await Deno.writeTextFile(`${dir}/bulk.jsonl`, many.join("\n") + "\n");
    await cliOk(["enqueue", "--file", `${dir}/bulk.jsonl`], { db });
    // Nothing may be pending in a WAL: the damage below must hit a database whose
    // every commit is in the file (a command's last close folds the WAL in).
    await cliOk(["status"], { db });
    assert.equal(await pathExists(`${db}-wal`), false, "the WAL was folded in");
    const original = await Deno.readFile(db);
    const pageSize = (original[16] << 8) | original[17];
    assert.ok(original.length >= pageSize * 8, `${original.length} bytes`);

    const rng = new SeededRandom(SEED + 1);
    const damaged = original.slice();
    damaged.set(rng.bytes(original.length - 2 * pageSize), 2 * pageSize);
    const truncated = original.slice(0, Math.floor(original.length / pageSize / 2) * pageSize);
    for (
      const [what, bytes] of [["pages 3 on overwritten", damaged], [
        "cut in half",
        truncated,
      ]] as const
    ) {
      await Deno.writeFile(db, bytes);
      for (const [args, result] of await runAll(db, dir)) {
        const command = `${what}: ${args.join(" ")}`;
        // A part the command does not touch may still read fine; what fails, fails cleanly.
        if (result.code !== 0) assertRefused(result, 1, command);
        else assert.ok(READS.includes(args), `${command} succeeded on a damaged database`);
      }
      await assertFileUnchanged(db, bytes, `${what}: the file is unchanged`);
    }
  }));

// ---------------------------------------------------------------------------
// Missing folders.

Deno.test("missing folders for the database are created, private to their owner", () =>
  withQueue(async ({ dir }) => {
    const viaFlag = `${dir}/a/b/c/queue.db`;
    assert.equal(await cliOk(["enqueue", "--id", "one", "true"], { db: viaFlag }), "one\n");
    for (const folder of [`${dir}/a`, `${dir}/a/b`, `${dir}/a/b/c`]) {
      assert.equal((await Deno.stat(folder)).mode! & 0o777, 0o700, folder);
    }
    assert.equal((await Deno.stat(viaFlag)).mode! & 0o777, 0o600, "the database file");
    assert.equal((await showJob(viaFlag, "one")).command, "true");

    const viaEnv = `${dir}/env/x/queue.db`;
    const env = await cli(["enqueue", "--id", "two", "true"], { env: { QUEUECTL_DB: viaEnv } });
    assert.equal(env.code, 0, env.stderr);
    assert.equal((await showJob(viaEnv, "two")).id, "two");

    const xdg = await cli(["enqueue", "--id", "three", "true"], {
      env: { QUEUECTL_DB: "", XDG_DATA_HOME: `${dir}/xdg` },
    });
    assert.equal(xdg.code, 0, xdg.stderr);
    assert.equal((await showJob(`${dir}/xdg/queuectl/queue.db`, "three")).id, "three");
    assert.equal((await Deno.stat(`${dir}/xdg/queuectl`)).mode! & 0o777, 0o700);
  }));

Deno.test("a database path under a regular file is refused with exit 1, and the file left alone", () =>
  withQueue(async ({ dir }) => {
    const file = `${dir}/notes.txt`;
    await Deno.writeTextFile(file, "my notes\n");
    const names = await entries(dir);
    for (const db of [`${file}/queue.db`, `${file}/sub/dir/queue.db`]) {
      for (
        const args of [["enqueue", "true"], ["status"], ["list"], ["worker", "start", "--drain"]]
      ) {
        assertRefused(await cli(args, { db }), 1, `${db}: ${args.join(" ")}`);
      }
    }
    assert.equal(await Deno.readTextFile(file), "my notes\n");
    assert.deepEqual(await entries(dir), names, "nothing was created");
  }));

Deno.test({
  name: "a missing folder its user cannot create is refused with exit 1",
  ignore: !CAN_RUN_AS_NOBODY,
  fn: () =>
    withQueue(async ({ dir }) => {
      await Deno.chmod(dir, 0o755);
      const denoDirPath = await denoDirForNobody(dir);
      const names = await entries(dir);
      for (const db of [`${dir}/new/queue.db`, `${dir}/queue.db`]) {
        const result = await cliAsNobody(["enqueue", "true"], db, dir, denoDirPath);
        assertRefused(result, 1, `as nobody: ${db}`);
      }
      assert.deepEqual(await entries(dir), names, "nothing was created");
    }),
});

// ---------------------------------------------------------------------------
// Locks held by another process.

/**
 * A process that opens the database with node:sqlite, takes the write lock
 * with BEGIN EXCLUSIVE, prints "locked", and after `holdMs` prints
 * "releasing <epoch ms>" and commits, or, with `crash`, kills itself with the
 * transaction still open.
 */
const HOLDER = `
import { DatabaseSync } from "node:sqlite";
const [path, holdMs, how] = Deno.args;
const db = new DatabaseSync(path);
db.exec("BEGIN EXCLUSIVE");
console.log("locked");
setTimeout(() => {
  console.log("releasing " + Date.now());
  if (how === "crash") Deno.kill(Deno.pid, "SIGKILL");
  db.exec("COMMIT");
  db.close();
}, Number(holdMs));
`;

interface Holder {
  /** Resolves with the moment the lock was about to be released. */
  released: Promise<number>;
  status: Promise<Deno.CommandStatus>;
  kill(): void;
}

/** Starts a lock holder and waits until it holds the lock. */
async function holdLock(db: string, holdMs: number, how: "commit" | "crash"): Promise<Holder> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", HOLDER, db, String(holdMs), how],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const nextLine = async (): Promise<string> => {
    while (!text.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the lock holder ended early: ${JSON.stringify(text)}`);
      text += value;
    }
    const line = text.slice(0, text.indexOf("\n"));
    text = text.slice(text.indexOf("\n") + 1);
    return line;
  };
  assert.equal(await nextLine(), "locked");
  const released = nextLine().then((line) => {
    const match = /^releasing (\d+)$/.exec(line);
    assert.ok(match, line);
    return Number(match[1]);
  });
  released.catch(() => {}); // Awaited by the test; only a stray rejection is silenced here.
  return {
    released,
    status: child.status,
    kill: () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    },
  };
}

Deno.test("an enqueue waits for another process's exclusive lock (held 2 s) and then succeeds", () =>
  withQueue(async ({ db, dir }) => {
    await seedQueue(db, dir);
    const before = await snapshot(db);
    const holder = await holdLock(db, 2_000, "commit");
    try {
      const started = Date.now();
      const [enqueue, status] = await Promise.all([
        cli(["enqueue", "--id", "waited", "echo after the lock"], { db }).then((result) => ({
          result,
          at: Date.now(),
        })),
        cli(["status", "--json"], { db }),
      ]);
      const releasedAt = await holder.released;
      // Readers are not blocked by a writer (WAL).
      assert.equal(status.code, 0, status.stderr);
      assert.equal(status.stdout, before.get("status --json")!.stdout);
      // The enqueue waited for the lock rather than failing, and then went through.
      assert.equal(enqueue.result.code, 0, enqueue.result.stderr);
      assert.equal(enqueue.result.stdout, "waited\n");
      assert.equal(enqueue.result.stderr, "");
      assert.ok(
        enqueue.at >= releasedAt,
        `the enqueue finished ${releasedAt - enqueue.at} ms before the lock was released`,
      );
      assert.ok(enqueue.at - started >= 1_000, `the enqueue took only ${enqueue.at - started} ms`);
      assert.equal((await holder.status).code, 0);
    } finally {
      holder.kill();
    }
    assert.equal((await showJob(db, "waited")).command, "echo after the lock");
    const after = await snapshot(db);
    assert.equal(after.get("show done --json")!.stdout, before.get("show done --json")!.stdout);
    assert.equal(after.get("logs done")!.stdout, "done\n");
  }));

Deno.test("a lock holder that dies mid-transaction frees the database for a waiting enqueue", () =>
  withQueue(async ({ db, dir }) => {
    await seedQueue(db, dir);
    const before = await snapshot(db);
    const holder = await holdLock(db, 1_500, "crash");
    try {
      const result = await cli(["enqueue", "--id", "after-crash", "true"], { db });
      const finishedAt = Date.now();
      const releasedAt = await holder.released;
      assert.equal((await holder.status).signal, "SIGKILL");
      assert.ok(finishedAt >= releasedAt, "the enqueue waited for the lock holder to die");
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "after-crash\n");
    } finally {
      holder.kill();
    }
    const after = await snapshot(db);
    for (const command of ["show done --json", "logs done", "config list --json"]) {
      assert.equal(after.get(command)!.stdout, before.get(command)!.stdout, command);
    }
    assert.equal((await showJob(db, "after-crash")).state, "pending");
  }));

/** How long the lock stays held after both jobs of the next test have ended, in ms. */
const HELD_AFTER_END_MS = 4_000;

Deno.test("runs that end while another connection holds the lock keep their real end time", () =>
  withQueue(async ({ dir, db }) => {
    // Each job runs until `go` exists, then stamps its end. The chatty one prints as it
    // waits, and goes on printing a little after `go`: its live output is being stored
    // while the quiet one's outcome already waits for the lock (holding this process's
    // write turn), and when its own run ends.
    const waitForGo = (name: string, print: string, after: string) =>
      `touch ${name}.started; while [ ! -f go ]; do ${print}sleep 0.02; done; ` +
      `${after}date +%s%3N > ${name}.ended`;
    const tick = "echo tick | tee -a ticks; ";
    const jobs = {
      chatty: await enqueueIn(
        dir,
        db,
        waitForGo("chatty", tick, `for i in 1 2 3 4 5 6 7 8 9 10; do ${tick}sleep 0.02; done; `),
      ),
      quiet: await enqueueIn(dir, db, waitForGo("quiet", "", "")),
    };
    const worker = startWorker(db, ["--count", "2"]);
    const holder = new DatabaseSync(db, { timeout: 10_000 });
    try {
      for (const name of Object.keys(jobs)) {
        await waitFor(`${name} to start`, () => pathExists(`${dir}/${name}.started`));
      }
      holder.exec("BEGIN IMMEDIATE");
      let releasedAt: number;
      const ends: Record<string, number> = {};
      try {
        // Ticks for a few live-output rounds (one per 100 ms): one now waits for the lock.
        const ticks = (await readIfExists(`${dir}/ticks`)).length;
        await waitFor(
          "the chatty job to print on",
          async () => (await readIfExists(`${dir}/ticks`)).length >= ticks + 5 * 15,
        );
        await Deno.writeTextFile(`${dir}/go`, "");
        for (const name of Object.keys(jobs)) {
          ends[name] = Number(
            await waitFor(
              `${name} to end`,
              async () => (await readIfExists(`${dir}/${name}.ended`)).trim(),
            ),
          );
        }
        await new Promise((resolve) => setTimeout(resolve, HELD_AFTER_END_MS));
      } finally {
        releasedAt = Date.now();
        holder.exec("COMMIT");
      }
      for (const [name, id] of Object.entries(jobs)) {
        await waitFor(
          `${name} to be recorded`,
          async () => (await showJob(db, id)).state === "completed",
        );
        const job = await showJob(db, id) as unknown as {
          finished_at: string;
          history: { started_at: string; finished_at: string }[];
        };
        const run = job.history[0];
        const took = Date.parse(run.finished_at) - Date.parse(run.started_at);
        const late = Date.parse(run.finished_at) - ends[name];
        console.log(`${name}: took ${took} ms, recorded end ${late} ms after its real end`);
        assert.equal(job.finished_at, run.finished_at);
        // A thread that waited a whole write turn (1 s) behind the quiet one's outcome
        // would see its run end 0.6 s late or more.
        assert.ok(Math.abs(late) < 500, `${name}: end recorded ${late} ms after the real one`);
        assert.ok(took < HELD_AFTER_END_MS, `${name}: recorded as taking ${took} ms`);
        assert.ok(
          Date.parse(run.finished_at) < releasedAt - HELD_AFTER_END_MS / 2,
          `${name}: the end time is the run's, not the moment the lock was released`,
        );
      }
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
      if (holder.isTransaction) holder.exec("ROLLBACK");
      holder.close();
      await Deno.writeTextFile(`${dir}/go`, "");
    }
  }));

// ---------------------------------------------------------------------------
// The database deleted under a running worker.

Deno.test("a worker whose database file is deleted stops within seconds: one line, exit 1, runs killed", () =>
  withQueue(async ({ db, dir }) => {
    await enqueueIn(dir, db, "echo $$ > run.pid; sleep 60");
    const worker = startWorker(db);
    let run = 0;
    try {
      run = Number(
        await waitFor(
          "the run to start",
          async () => (await readIfExists(`${dir}/run.pid`)).trim(),
        ),
      );
      for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(`${db}${suffix}`);
      const deletedAt = Date.now();
      assert.equal(await exitWithin(worker, 15_000), 1, worker.stdout());
      const tookMs = Date.now() - deletedAt;
      assert.match(
        worker.stderr(),
        /^queuectl: database \S+ was deleted or replaced while this worker ran; [^\n]+\n$/,
      );
      assert.equal(processExists(run), false, "its run was killed, not left running unrecorded");
      assert.ok(tookMs < 10_000, `it took ${tookMs} ms to stop`);
    } finally {
      killProcess(worker);
      if (run > 0 && processExists(run)) Deno.kill(-run, "SIGKILL");
    }
  }));

// ---------------------------------------------------------------------------
// A newer schema.

Deno.test("a database written by a newer queuectl is refused with exit 1 and left unchanged", () =>
  withQueue(async ({ db, dir }) => {
    await seedQueue(db, dir);
    const before = await snapshot(db);
    const setVersion = (version: number) => {
      const raw = new DatabaseSync(db);
      raw.exec(`PRAGMA user_version = ${version}`);
      raw.close();
    };
    setVersion(SCHEMA_VERSION + 1);
    const bytes = await Deno.readFile(db);
    const names = await entries(dir);
    for (const [args, result] of await runAll(db, dir)) {
      assertRefused(result, 1, args.join(" "));
      assert.match(result.stderr, /newer/, args.join(" "));
    }
    await assertFileUnchanged(db, bytes, "the file is unchanged");
    assert.deepEqual(await entries(dir), names, "no file was added beside it");

    setVersion(SCHEMA_VERSION);
    assertSameQueue(await snapshot(db), before, "the data is intact");
  }));
