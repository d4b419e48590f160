/**
 * Black-box tests of what a new user sees before anything runs: the usage of
 * bare `queuectl` and of a bare command group, `--help` for every command and
 * group in the command table (lib/cli/commands.ts), the settings listed by
 * `config set --help` (from lib/config.ts), and the "did you mean …?" hints
 * for mistyped commands, subcommands and options (lib/cli/suggest.ts).
 */

import assert from "node:assert/strict";
import { COMMANDS, GLOBAL_OPTIONS, GROUP_SUMMARIES, SECTIONS } from "../lib/cli/commands.ts";
import { CONFIG_KEYS, DEFAULT_CONFIG, formatConfigValue } from "../lib/config.ts";
import { assertRefused, cli, type CliResult, mapLimit, withQueue } from "./helpers.ts";

/** Names of the entries of a folder. */
async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names;
}

/** Runs several command lines at once (two at a time: the machine may be small). */
function cliAll(commandLines: string[][], db: string): Promise<CliResult[]> {
  return mapLimit(commandLines, 2, (args) => cli(args, { db }));
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The first words of two-word commands, e.g. `worker`. */
const GROUPS = [...new Set(COMMANDS.filter((def) => def.path.length === 2).map((d) => d.path[0]))];

/** Asserts that `text` has an indented line listing `name` with `summary` after it. */
function assertListed(text: string, name: string, summary: string, what: string): void {
  assert.match(
    text,
    new RegExp(`^ +${escape(name)} +${escape(summary)}$`, "m"),
    `${what} lists '${name}' with its summary`,
  );
}

Deno.test("bare queuectl prints the usage to stderr and exits 2; --help and help print it to stdout", () =>
  withQueue(async ({ db, dir }) => {
    const [bare, help, short, word] = await cliAll([[], ["--help"], ["-h"], ["help"]], db);
    for (const [result, what] of [[help, "--help"], [short, "-h"], [word, "help"]] as const) {
      assert.equal(result.code, 0, what);
      assert.equal(result.stderr, "", what);
    }
    assert.equal(short.stdout, help.stdout);
    assert.equal(word.stdout, help.stdout);

    assert.equal(bare.code, 2, "bare queuectl is a usage error");
    assert.equal(bare.stdout, "", "bare queuectl prints nothing on stdout");
    assert.equal(bare.stderr, help.stdout, "bare queuectl prints the usage on stderr");

    const usage = help.stdout;
    assert.match(usage, /^Usage: queuectl <command>/m);
    for (const def of COMMANDS) {
      assertListed(usage, `${def.path.join(" ")} ${def.args}`.trim(), def.summary, "--help");
    }
    for (const section of new Set(COMMANDS.map((def) => def.section))) {
      assert.match(usage, new RegExp(`^${escape(SECTIONS[section])}:$`, "m"), section);
    }
    // Every command sits under its own section's heading.
    const headings = Object.values(SECTIONS) as string[];
    let current = "";
    for (const line of usage.split("\n")) {
      if (headings.includes(line.slice(0, -1))) current = line.slice(0, -1);
      const def = COMMANDS.find((d) => line.startsWith(`  ${d.path.join(" ")} `));
      if (def) assert.equal(current, SECTIONS[def.section], `${def.path.join(" ")}'s section`);
    }
    for (const option of ["--db", "--help", "--version"]) {
      assert.match(usage, new RegExp(`^ .*${option}\\b`, "m"), `--help lists ${option}`);
    }
    assert.match(usage, /'queuectl <command> --help'/, "says how to get one command's help");
    assert.deepEqual(await entries(dir), [], "no database was created");
  }));

Deno.test("every command's --help exits 0 and lists its usage and each of its options", () =>
  withQueue(async ({ db, dir }) => {
    const results = await cliAll(COMMANDS.map((def) => [...def.path, "--help"]), db);
    const viaHelp = await cliAll(COMMANDS.map((def) => ["help", ...def.path]), db);
    COMMANDS.forEach((def, i) => {
      const name = def.path.join(" ");
      const { code, stdout, stderr } = results[i];
      assert.equal(code, 0, `${name} --help: exit code (stderr: ${stderr})`);
      assert.equal(stderr, "", `${name} --help: stderr`);
      const usage = `Usage: queuectl ${name}${def.args ? ` ${def.args}` : ""} [options]`;
      assert.ok(stdout.startsWith(`${usage}\n`), `${name} --help starts with '${usage}'`);
      assert.ok(stdout.toLowerCase().includes(def.summary.toLowerCase()), `${name}: summary`);
      for (const line of def.details ?? []) assert.ok(stdout.includes(line), `${name}: ${line}`);
      for (const [option, spec] of Object.entries({ ...def.options, ...GLOBAL_OPTIONS })) {
        const flag = `${spec.short ? `-${spec.short}, ` : ""}--${option}${
          spec.value ? ` ${spec.value}` : ""
        }`;
        assert.match(
          stdout,
          new RegExp(`^ +${escape(flag)} +${escape(spec.description)}$`, "m"),
          `${name} --help lists ${flag} with its description`,
        );
      }
      assert.equal(viaHelp[i].code, 0, `help ${name}`);
      assert.equal(viaHelp[i].stdout, stdout, `'help ${name}' prints what '${name} --help' does`);
    });
    assert.deepEqual(await entries(dir), [], "no database was created");
  }));

Deno.test("every command group's --help lists its subcommands; a bare group prints that to stderr, exit 2", () =>
  withQueue(async ({ db, dir }) => {
    assert.ok(GROUPS.length >= 3, "the table has groups (worker, dlq, config)");
    for (const group of GROUPS) {
      const [help, short, word, bare] = await cliAll(
        [[group, "--help"], [group, "-h"], ["help", group], [group]],
        db,
      );
      assert.equal(help.code, 0, `${group} --help`);
      assert.equal(help.stderr, "", `${group} --help`);
      assert.match(help.stdout, new RegExp(`^Usage: queuectl ${group} <command>`), group);
      assert.ok(GROUP_SUMMARIES[group], `${group} has a summary in GROUP_SUMMARIES`);
      assert.ok(
        help.stdout.toLowerCase().includes(GROUP_SUMMARIES[group].toLowerCase()),
        `${group} --help says what the group is for`,
      );
      for (const def of COMMANDS.filter((d) => d.path[0] === group)) {
        assertListed(help.stdout, `${def.path[1]} ${def.args}`.trim(), def.summary, group);
      }
      assert.match(help.stdout, new RegExp(`'queuectl ${group} <command> --help'`), group);
      assert.equal(short.stdout, help.stdout, `${group} -h`);
      assert.equal(word.stdout, help.stdout, `help ${group}`);

      assert.equal(bare.code, 2, `bare '${group}' is a usage error`);
      assert.equal(bare.stdout, "", `bare '${group}': stdout`);
      assert.equal(bare.stderr, help.stdout, `bare '${group}' prints its usage on stderr`);
    }
    assert.deepEqual(await entries(dir), [], "no database was created");
  }));

Deno.test("config get and config set --help list every key with its value form and default", () =>
  withQueue(async ({ db }) => {
    const [set, get] = await cliAll([["config", "set", "--help"], ["config", "get", "--help"]], db);
    assert.equal(set.code, 0);
    assert.equal(get.code, 0);
    const valueForms: Record<string, string> = {
      "max-retries": "N",
      "backoff-max": "DUR",
      "job-timeout": "DUR|none",
      retention: "DUR|none",
      "lease-timeout": "DUR",
    };
    for (const help of [set.stdout, get.stdout]) {
      assert.match(help, /^Keys:$/m);
      assert.match(help, /^A key may be written with '_' for '-'.*: max_retries\.$/m, "the _ rule");
      for (const key of CONFIG_KEYS) {
        const fallback = formatConfigValue(key, DEFAULT_CONFIG);
        const line = help.split("\n").find((l) => l.startsWith(`  ${key} `));
        assert.ok(line, `lists ${key}`);
        const cells = line.trim().split(/ {2,}/);
        assert.equal(cells[2], fallback, `${key}: its default`);
        if (key in valueForms) assert.equal(cells[1], valueForms[key], `${key}: its value form`);
      }
    }
    assert.match(set.stdout, /500ms, 10s, 5m, 2h, 1d/, "config set --help says how to write DUR");
  }));

Deno.test("worker start --help describes --count as how many jobs run at once", async () => {
  const help = await cli(["worker", "start", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^ +--count N +how many jobs run at once \(default 1\)$/m);
  assert.doesNotMatch(help.stdout, /Web Workers/);
});

Deno.test("a mistyped command, subcommand or option is refused in one line naming the nearest", () =>
  withQueue(async ({ db, dir }) => {
    const cases: [string[], string][] = [
      [["stauts"], "unknown command 'stauts' (did you mean 'status'?)"],
      [["lsit"], "unknown command 'lsit' (did you mean 'list'?)"],
      [["enqeue", "echo hi"], "unknown command 'enqeue' (did you mean 'enqueue'?)"],
      [["wroker", "start"], "unknown command 'wroker' (did you mean 'worker'?)"],
      [["worker", "strat"], "unknown command 'worker strat' (did you mean 'worker start'?)"],
      [["dlq", "retyr", "--all"], "unknown command 'dlq retyr' (did you mean 'dlq retry'?)"],
      [["config", "gte", "retention"], "unknown command 'config gte' (did you mean 'config get'?)"],
      [["start"], "unknown command 'start' (did you mean 'worker start'?)"],
      // The subcommand typed without its group comes first, before a command one letter away.
      [["stop"], "unknown command 'stop' (did you mean 'worker stop' or 'top'?)"],
      [
        ["set", "max-retries", "3"],
        "unknown command 'set' (did you mean 'queue set' or 'config set'?)",
      ],
      [["hlep"], "unknown command 'hlep' (did you mean 'help'?)"],
      [["help", "stauts"], "unknown command 'stauts' (did you mean 'status'?)"],
      [
        ["enqueue", "--timout", "5s", "true"],
        "unknown option '--timout' (did you mean '--timeout'?)",
      ],
      [["enqueue", "--timout=5s", "true"], "unknown option '--timout' (did you mean '--timeout'?)"],
      [["list", "--JSON"], "unknown option '--JSON' (did you mean '--json'?)"],
      [["worker", "start", "--cuont", "2"], "unknown option '--cuont' (did you mean '--count'?)"],
      [["--verison"], "unknown option '--verison' (did you mean '--version'?)"],
      [["worker", "--hepl"], "unknown option '--hepl' (did you mean '--help'?)"],
      // Prefixes are only suggested; they never run the command.
      [["enq", "echo hi"], "unknown command 'enq' (did you mean 'enqueue'?)"],
      [["st"], "unknown command 'st' (did you mean 'status' or 'stats'?)"],
      [["purge", "--older", "1d"], "unknown option '--older' (did you mean '--older-than'?)"],
    ];
    const results = await cliAll(cases.map(([args]) => args), db);
    cases.forEach(([args, message], i) => {
      const what = `queuectl ${args.join(" ")}`;
      assertRefused(results[i], 2, what);
      assert.equal(results[i].stderr, `queuectl: ${message}\n`, what);
    });
    assert.deepEqual(await entries(dir), [], "nothing ran: no database was created");
  }));

Deno.test("a subcommand after an option of its group is named, not dropped for the group's usage", () =>
  withQueue(async ({ db, dir }) => {
    const [stop, typo, help, startHelp] = await cliAll(
      [
        ["worker", "--db", db, "stop"],
        ["dlq", "--db", db, "lst"],
        ["worker", "-h", "start"],
        ["worker", "start", "--help"],
      ],
      db,
    );
    assertRefused(stop, 2, "worker --db PATH stop");
    assert.equal(
      stop.stderr,
      "queuectl: the subcommand comes before its options: queuectl worker stop [options]\n",
    );
    assertRefused(typo, 2, "dlq --db PATH lst");
    assert.equal(typo.stderr, "queuectl: unknown command 'dlq lst' (did you mean 'dlq list'?)\n");
    assert.equal(help.code, 0, "worker -h start");
    assert.equal(help.stdout, startHelp.stdout, "worker -h start shows worker start's help");
    assert.deepEqual(await entries(dir), [], "nothing ran: no database was created");
  }));

Deno.test("a word close to nothing gets no suggestion, only where to look", () =>
  withQueue(async ({ db, dir }) => {
    const cases: [string[], string][] = [
      [["bogus"], "unknown command 'bogus' (run 'queuectl --help' for the list)"],
      [["x"], "unknown command 'x' (run 'queuectl --help' for the list)"],
      [["worker", "bogus"], "unknown command 'worker bogus' (known: start, stop)"],
      [
        ["list", "--bogus"],
        "unknown option '--bogus' (run 'queuectl list --help' for the options)",
      ],
      [["list", "-z"], "unknown option '-z' (run 'queuectl list --help' for the options)"],
      [["--bogus", "list"], "unknown option '--bogus' (run 'queuectl --help' for the options)"],
      [["dlq", "--bogus"], "unknown option '--bogus' (run 'queuectl dlq --help' for the options)"],
      [
        ["dlq", "retry", "--everything"],
        "unknown option '--everything' (run 'queuectl dlq retry --help' for the options)",
      ],
    ];
    const results = await cliAll(cases.map(([args]) => args), db);
    cases.forEach(([args, message], i) => {
      const what = `queuectl ${args.join(" ")}`;
      assertRefused(results[i], 2, what);
      assert.equal(results[i].stderr, `queuectl: ${message}\n`, what);
    });
    assert.deepEqual(await entries(dir), [], "no database was created");
  }));

Deno.test("a valid command does not load the help or suggestion code", async () => {
  // `deno info` lists main.ts's module graph, literal dynamic imports included; Deno loads
  // at start-up every module reachable through code (not type-only) dependencies.
  const output = await new Deno.Command(Deno.execPath(), {
    // The source's graph, also when the other tests of this file run against the release bundle.
    args: ["info", "--json", new URL("../main.ts", import.meta.url).pathname],
    stdin: "null",
    stderr: "null",
  }).output();
  assert.equal(output.code, 0, "deno info runs");
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
  };
  const bySpecifier = new Map(graph.modules.map((module) => [module.specifier, module]));
  const loaded = new Set<string>(graph.roots);
  for (const specifier of loaded) {
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.code) loaded.add(dependency.code.specifier);
    }
  }
  const names = [...loaded];
  for (const eager of ["/lib/cli/main.ts", "/lib/cli/commands/enqueue.ts"]) {
    assert.ok(names.some((s) => s.endsWith(eager)), `${eager} is loaded at start-up`);
  }
  for (const lazy of ["/lib/cli/help.ts", "/lib/cli/suggest.ts"]) {
    assert.ok(!names.some((s) => s.endsWith(lazy)), `${lazy} is not loaded at start-up`);
  }
});
