/**
 * `queuectl completions bash|zsh|fish`: the scripts are valid for their
 * shell, follow the command table, and (bash, and fish where installed)
 * really complete commands, subcommands, options and their values.
 */

import assert from "node:assert/strict";
import { COMMANDS, GLOBAL_OPTIONS } from "../lib/cli/commands.ts";
import { CONFIG_KEYS } from "../lib/config.ts";
import { JOB_STATES } from "../lib/states.ts";
import { assertRefused, cli, cliOk, withQueue } from "./helpers.ts";

/** Whether a program can be found on PATH. */
async function installed(program: string): Promise<boolean> {
  const result = await new Deno.Command("sh", {
    args: ["-c", `command -v ${program}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return result.success;
}

/** Runs a program to the end and returns its exit code and output. */
async function run(program: string, args: string[], cwd?: string) {
  const output = await new Deno.Command(program, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Writes the script for `shell` into `dir` and returns its path. */
async function writeScript(dir: string, shell: string): Promise<string> {
  const path = `${dir}/queuectl.${shell}`;
  await Deno.writeTextFile(path, await cliOk(["completions", shell]));
  return path;
}

/**
 * What bash's completion function offers for each command line (the last
 * word is the one being completed), as bash would call it from Tab.
 */
async function bashCompletions(
  script: string,
  lines: string[][],
  cwd: string,
): Promise<string[][]> {
  const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
  const driver = [
    `source ${quote(script)}`,
    ...lines.map((words) =>
      [
        `COMP_WORDS=(${words.map(quote).join(" ")})`,
        `COMP_CWORD=${words.length - 1}`,
        "COMPREPLY=()",
        "_queuectl",
        `printf '%s\\n' "\${COMPREPLY[*]}"`,
      ].join("; ")
    ),
  ].join("\n");
  const result = await run("bash", ["-c", driver], cwd);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "", "no errors while completing");
  return result.stdout.replace(/\n$/, "").split("\n").map((line) =>
    line === "" ? [] : line.split(" ").sort()
  );
}

Deno.test("the bash script passes bash -n and completes commands, subcommands, options and states", () =>
  withQueue(async ({ dir }) => {
    const script = await writeScript(dir, "bash");
    const check = await run("bash", ["-n", script]);
    assert.equal(check.code, 0, `bash -n: ${check.stderr}`);

    const cases: [string[], string[]][] = [
      [["queuectl", "wor"], ["worker"]],
      [["queuectl", "worker", "st"], ["start", "stop"]],
      [["queuectl", "list", "--st"], ["--state"]],
      [["queuectl", "list", "--state", ""], [...JOB_STATES].sort()],
      [["queuectl", "list", "--state", "p"], ["pending", "processing"]],
      // Bash splits "--state=pe" at "=".
      [["queuectl", "list", "--state", "=", "pe"], ["pending"]],
      [["queuectl", "--db", "q.db", "list", "--state", "c"], ["completed"]],
      [["queuectl", "purge", "--state", ""], ["completed", "dead"]],
      [["queuectl", "dlq", ""], ["list", "retry"]],
      [["queuectl", "config", ""], ["get", "list", "set"]],
      [["queuectl", "config", "get", ""], [...CONFIG_KEYS].sort()],
      [["queuectl", "config", "set", "max-retries", ""], []],
      [["queuectl", "completions", ""], ["bash", "fish", "zsh"]],
      [["queuectl", "worker", "start", "--d"], ["--db", "--detach", "--drain"]],
      [["queuectl", "-"], ["--db", "--help", "--version", "-V", "-h"]],
      [["queuectl", "show", "abc", "--j"], ["--json"]],
    ];
    const got = await bashCompletions(script, cases.map(([words]) => words), dir);
    cases.forEach(([words, expected], i) => {
      assert.deepEqual(got[i], expected, `completing: ${words.join(" ")}`);
    });

    const top = (await bashCompletions(script, [["queuectl", ""]], dir))[0];
    const words = [...new Set(COMMANDS.map((def) => def.path[0]))];
    assert.deepEqual(top, [...words, "help"].sort(), "every command word");
  }));

Deno.test("the bash script completes files for --db, --file and --log and folders for --cwd", () =>
  withQueue(async ({ dir }) => {
    const script = await writeScript(dir, "bash");
    await Deno.mkdir(`${dir}/jobs-folder`);
    await Deno.writeTextFile(`${dir}/jobs.jsonl`, "");
    const got = await bashCompletions(script, [
      ["queuectl", "--db", "jobs"],
      ["queuectl", "enqueue", "--file", "jobs"],
      ["queuectl", "worker", "start", "--log", "jobs."],
      ["queuectl", "enqueue", "--cwd", "jobs"],
      ["queuectl", "list", ""],
    ], dir);
    assert.deepEqual(got[0], ["jobs-folder", "jobs.jsonl"]);
    assert.deepEqual(got[1], ["jobs-folder", "jobs.jsonl"]);
    assert.deepEqual(got[2], ["jobs.jsonl"]);
    assert.deepEqual(got[3], ["jobs-folder"], "only folders for --cwd");
    assert.ok(got[4].includes("--state"), "list offers its options on an empty word");
  }));

Deno.test("the zsh and fish scripts pass their shells' checks and name every command and option", () =>
  withQueue(async ({ dir }) => {
    for (const shell of ["zsh", "fish"]) {
      const script = await writeScript(dir, shell);
      const text = await Deno.readTextFile(script);
      if (await installed(shell)) {
        const check = await run(shell, ["-n", script]);
        assert.equal(check.code, 0, `${shell} -n: ${check.stderr}`);
      }
      for (const def of COMMANDS) {
        for (const word of def.path) {
          assert.match(text, new RegExp(`\\b${word}\\b`), `${shell}: names ${def.path.join(" ")}`);
        }
        for (const option of Object.keys({ ...def.options, ...GLOBAL_OPTIONS })) {
          assert.ok(text.includes(option), `${shell}: ${def.path.join(" ")} --${option}`);
        }
      }
      for (const value of [...JOB_STATES, ...CONFIG_KEYS]) {
        assert.ok(text.includes(value), `${shell}: offers ${value}`);
      }
    }
    const zsh = await cliOk(["completions", "zsh"]);
    assert.match(zsh, /^#compdef queuectl$/m, "zsh finds the function by its #compdef line");
  }));

Deno.test("the fish script completes commands, subcommands, options and states", {
  ignore: !(await installed("fish")),
}, () =>
  withQueue(async ({ dir }) => {
    const script = await writeScript(dir, "fish");
    const complete = async (line: string) => {
      const result = await run("fish", [
        "--no-config",
        "-c",
        `source ${script}; complete -C ${JSON.stringify(line)}`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.split("\n").filter((l) => l !== "").map((l) => l.split("\t")[0]).sort();
    };
    assert.deepEqual(await complete("queuectl wor"), ["worker"]);
    assert.deepEqual(await complete("queuectl worker st"), ["start", "stop"]);
    assert.deepEqual(await complete("queuectl list --st"), ["--state"]);
    assert.deepEqual(await complete("queuectl list --state "), [...JOB_STATES].sort());
    assert.deepEqual(await complete("queuectl --db x.db config get "), [...CONFIG_KEYS].sort());
    assert.deepEqual(await complete("queuectl config set retention "), []);
  }));

Deno.test("completions refuses a missing or unknown shell with exit 2", async () => {
  assertRefused(await cli(["completions"]), 2, "no shell");
  assertRefused(await cli(["completions", "tcsh"]), 2, "unknown shell");
  assertRefused(await cli(["completions", "bash", "zsh"]), 2, "two shells");
});
