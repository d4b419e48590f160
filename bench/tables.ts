/**
 * Start-up of the commands that print tables: `status`, `list`, `show <id>`
 * and `dlq list`, each a whole CLI call, against `deno run` of an empty
 * script measured in the same run (interleaved, so that a noisy moment hits
 * both alike). The target is 2× the empty script: a table command must not
 * load an npm package or Node compatibility on its way (20–45 ms on their
 * own). Each command's `--json` form, the same work without a table, is
 * timed too and given in the notes. Output is piped, as in a script; on a
 * terminal a table is fitted and coloured by the same code.
 *
 * @module
 */

import {
  type BenchResult,
  cliOk,
  emptyDenoRun,
  figure,
  median,
  percentile,
  progress,
  round,
  type Sizes,
  withTempDir,
} from "./util.ts";

/** A dead job, so that `dlq list` has a row and `show` a history table. */
const DEAD_ID = "bench-dead";

/** The commands timed, and a line each must print (so that a broken table is not timed as fast). */
const COMMANDS: { args: string[]; expect: RegExp }[] = [
  { args: ["status"], expect: /^QUEUE\s+STATUS\s/m },
  { args: ["list"], expect: /^ID\s+STATE\s/m },
  { args: ["show", DEAD_ID], expect: /^\s+#\s+STARTED\s/m },
  { args: ["dlq", "list"], expect: new RegExp(`^${DEAD_ID}\\s`, "m") },
];

/** Fills a database with a few jobs of each kind the tables show. */
async function seed(db: string, dir: string): Promise<void> {
  const specs = [
    { id: DEAD_ID, command: "echo oops >&2; exit 3", max_retries: 0 },
    { id: "bench-done", command: "true" },
    { id: "bench-mail", command: "echo mail", queue: "mail" },
  ];
  await Deno.writeTextFile(`${dir}/seed.jsonl`, specs.map((s) => JSON.stringify(s)).join("\n"));
  await cliOk(db, ["enqueue", "--file", `${dir}/seed.jsonl`], { cwd: dir });
  await cliOk(db, ["worker", "start", "--drain"], { cwd: dir, timeoutMs: 60_000 });
  for (let i = 0; i < 5; i++) {
    await cliOk(db, ["enqueue", "--delay", "1h", `echo waiting job ${i}`], { cwd: dir });
  }
}

/** Runs the start-up measurement of the table commands. */
export function runTables(sizes: Sizes): Promise<BenchResult> {
  return withTempDir("tables", async (dir) => {
    const problems: string[] = [];
    const db = `${dir}/tables.db`;
    await seed(db, dir);
    const runEmpty = await emptyDenoRun(dir);
    const time = async (args: string[], expect?: RegExp) => {
      const result = await cliOk(db, args, { cwd: dir });
      if (expect && !expect.test(result.stdout)) {
        problems.push(
          `queuectl ${args.join(" ")} printed no table: ${result.stdout.slice(0, 200)}`,
        );
      }
      return result.ms;
    };
    const runs = sizes.tableRuns;
    progress(`tables: ${runs} rounds of ${COMMANDS.length} commands, table and --json`);
    // Warm-up, unmeasured: the first runs fill Deno's module and transpile caches.
    for (let i = 0; i < 2; i++) {
      await runEmpty();
      for (const { args } of COMMANDS) {
        await time(args);
        await time([...args, "--json"]);
      }
    }
    const bare: number[] = [];
    const table = COMMANDS.map(() => [] as number[]);
    const json = COMMANDS.map(() => [] as number[]);
    for (let i = 0; i < runs; i++) {
      bare.push(await runEmpty());
      for (const [c, { args, expect }] of COMMANDS.entries()) {
        table[c].push(await time(args, i === 0 ? expect : undefined));
        json[c].push(await time([...args, "--json"]));
      }
    }
    const base = median(bare);
    const figures = COMMANDS.map(({ args }, c) =>
      figure(
        "tables",
        `\`${args[0] === "show" ? "show <id>" : args.join(" ")}\` (a table), whole CLI call, ` +
          `p50 of ${runs}`,
        median(table[c]),
        "ms",
        { label: "deno run of an empty script, p50", value: base, unit: "ms" },
        "lower",
        `--json form ${median(json[c]).toFixed(1)} ms; p90 ${
          percentile(table[c], 90).toFixed(1)
        } vs ${percentile(bare, 90).toFixed(1)} ms; target 2×`,
      )
    );
    const summary = (values: number[]) => ({
      p50: round(median(values)),
      p90: round(percentile(values, 90)),
    });
    return {
      figures,
      details: {
        runs,
        emptyDenoMs: summary(bare),
        commands: COMMANDS.map(({ args }, c) => ({
          command: args.join(" "),
          tableMs: summary(table[c]),
          jsonMs: summary(json[c]),
        })),
      },
      problems,
    };
  });
}
