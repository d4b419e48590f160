/**
 * `--db` and `QUEUECTL_DB` name a location (lib/db_location.ts): a PostgreSQL
 * URL opens the PostgreSQL store, and a server that cannot be reached is
 * reported in one line that never shows the password, leaving no file
 * behind; other URLs are refused; everything else is a SQLite path, `:` and
 * `//` in it included.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  assertRefused,
  cli,
  cliOk,
  type CliResult,
  denoDir,
  listJobs,
  mapLimit,
  pathExists,
  withQueue,
} from "./helpers.ts";

const PASSWORD = "s3cret-pw";

/** Every file and folder under `dir`, relative to it. */
async function everythingUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (folder: string, prefix: string) => {
    for await (const entry of Deno.readDir(folder)) {
      found.push(`${prefix}${entry.name}`);
      if (entry.isDirectory) await walk(`${folder}/${entry.name}`, `${prefix}${entry.name}/`);
    }
  };
  await walk(dir, "");
  return found.sort();
}

/**
 * Runs `args` in `dir` with the database named only by `via` (`--db`, put
 * after the command, or `QUEUECTL_DB`); HOME and XDG_DATA_HOME point into
 * `dir`, so that a fallback to the default file would show there too.
 */
async function runWith(
  dir: string,
  via: "flag" | "env",
  value: string,
  args: string[],
): Promise<CliResult> {
  const env = {
    HOME: `${dir}/home`,
    XDG_DATA_HOME: `${dir}/xdg`,
    DENO_DIR: await denoDir(),
    QUEUECTL_DB: via === "env" ? value : "",
  };
  return await cli(via === "flag" ? [...args, "--db", value] : args, { cwd: dir, env });
}

/** Commands that open the queue: the four the issue names, and the background worker. */
const COMMANDS = [
  ["enqueue", "true"],
  ["status"],
  ["list"],
  ["worker", "start"],
  ["worker", "start", "--detach"],
];

/**
 * URLs with a password, of a server that refuses connections (port 1 on
 * loopback), and the form each is shown in.
 */
const POSTGRES_URLS: [string, string][] = [
  [
    `postgres://alice:${PASSWORD}@127.0.0.1:1/jobs`,
    "postgres://alice@127.0.0.1:1/jobs",
  ],
  [
    `postgresql://alice:${PASSWORD}@127.0.0.1:1/jobs?sslmode=require&password=${PASSWORD}`,
    "postgresql://alice@127.0.0.1:1/jobs?sslmode=require",
  ],
  [`POSTGRES://alice:${PASSWORD}@127.0.0.1:1/jobs`, "POSTGRES://alice@127.0.0.1:1/jobs"],
];

Deno.test(
  "a postgres:// URL of a server that cannot be reached fails in one line without its password, leaving no file",
  () =>
    withQueue(async ({ dir }) => {
      const runs = COMMANDS.flatMap((args) =>
        (["flag", "env"] as const).flatMap((via) =>
          POSTGRES_URLS.map(([url, shown]) => ({ args, via, url, shown }))
        )
      );
      await mapLimit(runs, 2, async ({ args, via, url, shown }) => {
        const what = `${args.join(" ")} with ${url} by ${via}`;
        const result = await runWith(dir, via, url, args);
        assertRefused(result, 1, what);
        assert.equal(
          result.stderr,
          `queuectl: cannot reach PostgreSQL at ${shown}: connection refused\n`,
          what,
        );
        assert.ok(!`${result.stdout}${result.stderr}`.includes(PASSWORD), `${what}: password`);
      });
      assert.deepEqual(await everythingUnder(dir), [], "nothing was created under the cwd");
    }),
);

Deno.test("a URL of another scheme, or postgres: without //, is refused and makes no file", () =>
  withQueue(async ({ dir }) => {
    const cases: [string, string][] = [
      [
        `mysql://alice:${PASSWORD}@db.example/jobs`,
        "mysql:// is not a database queuectl can use: give the path of a SQLite file " +
        "or a postgres:// URL (for a file of that name, start it with ./)",
      ],
      [
        `postgres:/alice:${PASSWORD}@db.example/jobs`,
        "a PostgreSQL URL starts with postgres:// (for a file of that name, start it with ./)",
      ],
    ];
    for (const [value, message] of cases) {
      for (const via of ["flag", "env"] as const) {
        const result = await runWith(dir, via, value, ["enqueue", "true"]);
        assertRefused(result, 2, `${value} by ${via}`);
        const source = via === "flag" ? "--db" : "QUEUECTL_DB";
        assert.equal(result.stderr, `queuectl: ${source}: ${message}\n`);
        assert.ok(!result.stderr.includes(PASSWORD));
      }
    }
    assert.deepEqual(await everythingUnder(dir), []);
  }));

Deno.test("a SQLite path with : or // in it is still a path, and its workers use it", () =>
  withQueue(async ({ dir }) => {
    const env = { QUEUECTL_DB: "", DENO_DIR: await denoDir() };
    // Relative, so that the name is taken exactly as typed.
    const db = "a:b//queue.db";
    const id = (await cliOk(["enqueue", "echo hi"], { db, cwd: dir, env })).trim();
    const worker = await cliOk(["worker", "start", "--drain"], { db, cwd: dir, env });
    assert.match(worker, new RegExp(`database ${RegExp.escape(`${dir}/${db}`)}\\)`));
    const file = `${dir}/a:b/queue.db`;
    assert.deepEqual((await listJobs(file)).map((job) => [job.id, job.state]), [
      [id, "completed"],
    ]);
    // The runs folder is beside the file, as ever.
    assert.ok(await pathExists(`${dir}/a:b/queue.db.runs`), "the runs folder");

    // ./ makes a URL-like name a path; prefixes such as file: are part of the name.
    for (
      const [name, path] of [["./postgres://h/q.db", "postgres:/h/q.db"], [
        "file:q.db",
        "file:q.db",
      ]]
    ) {
      assert.equal(
        await cliOk(["enqueue", "--id", "x", "true"], { db: name, cwd: dir, env }),
        "x\n",
      );
      assert.equal((await listJobs(`${dir}/${path}`))[0].id, "x", name);
    }
  }));
