/**
 * The release bundle (tools/bundle.ts), from which `deno task compile` builds
 * the binary, run for real: its layout puts every module loaded when needed
 * where lib/module_urls.ts looks for it, and CLI test files that reach each
 * of those modules (a command's logic, help, suggestions, live output, the
 * progress bar's npm package, the Web Worker) pass against it as they pass
 * against the source, and so does
 * a PostgreSQL queue (the backend loaded when needed, its npm client outside
 * the bundle). The binary itself cannot run here (no base runtime:
 * tests/compile_test.ts checks what it embeds). The dashboard's pages, whose
 * script and style are modules of strings, are served from it too.
 *
 * @module
 */

import assert from "node:assert/strict";
import { COMMANDS_FOLDER, ON_DEMAND_MODULES } from "../lib/module_urls.ts";
import { PAGE_SCRIPT } from "../lib/dashboard/page_script.ts";
import { PAGE_STYLE } from "../lib/dashboard/page_style.ts";
import { bundle, bundleEntries } from "../tools/bundle.ts";
import { pgTest, withFreshSchema } from "./pg_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/**
 * Builds the bundle into a folder of its own under bundle/ (inside the
 * project, so that `deno run` of it finds deno.json's import map for the npm
 * packages, as `deno compile` does), runs `fn` with its main.js, removes it.
 */
async function withBundle(fn: (main: string) => Promise<void> | void): Promise<void> {
  await Deno.mkdir(`${ROOT}bundle`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${ROOT}bundle`, prefix: "test-" });
  try {
    await bundle(dir);
    await fn(`${dir}/main.js`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("bundle: each module loaded when needed is an entry file at its own path", async () => {
  await withBundle((main) => {
    const root = main.slice(0, -"main.js".length);
    const commands = [...Deno.readDirSync(`${ROOT}${COMMANDS_FOLDER}`)].map((entry) =>
      `${COMMANDS_FOLDER}/${entry.name.replace(/\.ts$/, "")}`
    );
    assert.ok(commands.length >= 20, `commands found: ${commands.length}`);
    for (const path of [...ON_DEMAND_MODULES, ...commands]) {
      assert.ok(Deno.statSync(`${root}${path}.js`).isFile, `${path}.js in the bundle`);
    }
    assert.equal(bundleEntries().length, 1 + commands.length + ON_DEMAND_MODULES.length);
    // Code that several entries share sits in chunks at the root, lib/module_urls.ts's with it:
    // the rule by which it finds the others.
    const atRoot = [...Deno.readDirSync(root)].filter((entry) => entry.isFile);
    const holders = atRoot.filter((entry) =>
      Deno.readTextFileSync(`${root}${entry.name}`).includes('import.meta.url.endsWith(".js")')
    );
    assert.equal(holders.length, 1, "lib/module_urls.ts's code is in one file at the root");
    // Start-up reads three files (tools/bundle_merge.ts): the chunks of main.js and of enqueue
    // are folded into core.js, and what a single enqueue runs is compiled with its file
    // (tools/startup_profile.ts, tools/eager_compile.ts); what it does not run is left as written.
    const staticImports = (path: string) =>
      [...Deno.readTextFileSync(path).matchAll(/^(?:import|export)\b[^;]*?"(\.[^"]+)";/gms)]
        .map((match) => match[1]);
    assert.deepEqual([...new Set(staticImports(main))], ["./core.js"]);
    assert.deepEqual([...new Set(staticImports(`${root}lib/cli/commands/enqueue.js`))], [
      "../../../core.js",
    ]);
    const core = Deno.readTextFileSync(`${root}core.js`);
    assert.match(core, /^var openSqliteDatabase = \(async function \(/m);
    assert.match(Deno.readTextFileSync(main), /^var leadingOptions = \(function \(/m);
    assert.match(core, /^function migrateLocked\(/m, "a function enqueue does not run");
  });
});

/** Test files whose CLI runs reach every module the bundle loads when needed. */
const CLI_FILES = [
  "cli_enqueue_test.ts",
  "cli_help_test.ts",
  "cli_errors_test.ts",
  "cli_follow_test.ts",
  "cli_control_test.ts",
  "cli_wait_test.ts",
  "worker_run_test.ts",
  "cli_schedule_test.ts",
];

Deno.test("bundle: the CLI's test files pass against the bundle as against the source", async () => {
  await withBundle(async (main) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--parallel", ...CLI_FILES],
      cwd: `${ROOT}tests`,
      env: { QUEUECTL_TEST_MAIN: main, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    const summary = text.match(/^(ok|FAILED) \| (\d+) passed.*$/m)?.[0] ?? "(no summary)";
    assert.ok(output.success, `${summary}\n${text.slice(-4000)}`);
    const passed = Number(summary.match(/(\d+) passed/)?.[1] ?? 0);
    assert.ok(passed >= 50, `too few tests ran against the bundle: ${summary}`);
    console.log(`  against the bundle: ${summary}`);
  });
});

pgTest("bundle: a PostgreSQL queue runs its jobs through the bundle", async () => {
  await withBundle(async (main) => {
    await withFreshSchema(async ({ url }) => {
      const queuectl = async (args: string[]) => {
        const result = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", main, "--db", url, ...args],
          env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "" },
          stdin: "null",
        }).output();
        const stderr = new TextDecoder().decode(result.stderr);
        assert.equal(result.code, 0, `queuectl ${args.join(" ")}: ${stderr}`);
        return new TextDecoder().decode(result.stdout);
      };
      const id = (await queuectl(["enqueue", "echo from the bundle"])).trim();
      await queuectl(["worker", "start", "--count", "2", "--drain"]);
      const job = JSON.parse(await queuectl(["show", id, "--json"]));
      assert.equal(job.state, "completed");
      assert.match(await queuectl(["logs", id]), /^from the bundle$/m);
    });
  });
});

Deno.test("bundle: the dashboard serves its pages, script and style from the bundle", async () => {
  await withBundle(async (main) => {
    const dir = await Deno.makeTempDir({ prefix: "queuectl-bundle-dashboard-" });
    const dashboard = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "--db", `${dir}/queue.db`, "dashboard", "--port", "0"],
      env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const reader = dashboard.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let printed = "";
      while (!/open (http:\/\/\S+)/.test(printed)) {
        const { value, done } = await reader.read();
        assert.ok(!done, `the dashboard exited: ${printed}`);
        printed += value;
      }
      const origin = new URL(/open (http:\/\/\S+)/.exec(printed)![1]).origin;
      const text = async (path: string) => {
        const response = await fetch(`${origin}${path}`);
        assert.equal(response.status, 200, path);
        return await response.text();
      };
      assert.match(await text("/jobs"), /<script src="\/assets\/dashboard\.js" defer>/);
      assert.equal(await text("/assets/dashboard.js"), PAGE_SCRIPT);
      assert.equal(await text("/assets/dashboard.css"), PAGE_STYLE);
      reader.cancel().catch(() => {});
    } finally {
      dashboard.kill("SIGTERM");
      await dashboard.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
});
