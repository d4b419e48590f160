/**
 * `deno task compile` checked offline. A real compile needs Deno's download
 * server for its base runtime (denort); with `DENORT_BIN` pointing at the full
 * `deno` executable the whole compile still runs (type check, module graph, npm
 * packages, the included files) and prints the "Embedded Files" tree, which is
 * exactly what a release binary would contain. The binary it writes does not
 * run queuectl (the full executable ignores the payload), so these tests read
 * the tree: the release bundle (tools/bundle.ts) the binary is compiled from,
 * and every npm package, must be in it; and every module the program loads by
 * a URL built at run time must be an entry of that bundle, or a release binary
 * fails the first time it takes that path. tests/bundle_test.ts runs the
 * bundle itself.
 *
 * @module
 */

import assert from "node:assert/strict";
import { COMMANDS_FOLDER, ON_DEMAND_MODULES } from "../lib/module_urls.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const NPM_ROOT = ".deno_compile_node_modules/localhost";

/** What the tree says is embedded: whole directories (`dir/*`) and single files. */
export interface EmbeddedTree {
  /** Directories embedded with every file in them, relative to the project. */
  wholeDirs: string[];
  /** Files (and directories listed entry by entry), relative to the project. */
  paths: string[];
}

/**
 * Parses the "Embedded Files" tree `deno compile` prints (without colours). Each
 * level indents by two characters; `name/*` means the whole directory is embedded.
 */
export function parseEmbeddedTree(output: string): EmbeddedTree {
  const lines = output.split("\n");
  const start = lines.findIndex((line) => line.trim() === "Embedded Files");
  assert.notEqual(start, -1, `no "Embedded Files" tree in the output:\n${output}`);
  const tree: EmbeddedTree = { wholeDirs: [], paths: [] };
  const stack: string[] = [];
  // The tree opens with a blank line and the binary's name; it ends at the next blank line.
  for (const line of lines.slice(start + 3)) {
    if (line.trim() === "") break;
    const entry = line.match(/^([│ ]*)[├└]─[┬─] (.+?) \(\d[^)]*\)$/);
    assert.ok(entry, `unexpected line in the tree: ${JSON.stringify(line)}`);
    const depth = entry[1].length / 2;
    stack.length = depth;
    stack.push(entry[2]);
    const path = stack.join("/");
    if (path.endsWith("/*")) tree.wholeDirs.push(path.slice(0, -2));
    else tree.paths.push(path);
  }
  assert.ok(tree.paths.length + tree.wholeDirs.length > 0, "the tree lists nothing");
  return tree;
}

/** Whether `path` (a file or directory, relative to the project) is embedded. */
export function isEmbedded(tree: EmbeddedTree, path: string): boolean {
  return tree.paths.some((p) => p === path || p.startsWith(`${path}/`)) ||
    tree.wholeDirs.some((dir) =>
      path === dir || path.startsWith(`${dir}/`) ||
      dir.startsWith(`${path}/`)
    );
}

/** Every file below `dir` (relative to the project), recursively. */
function filesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(`${ROOT}${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...filesUnder(path));
    else found.push(path);
  }
  return found;
}

/** Where a module of the program loads another by a URL built at run time, and which. */
export interface RunTimeLoad {
  /** `file:line`, for messages. */
  site: string;
  /** The module's path from the project's root without extension, or the folder of commands. */
  module: string;
}

/**
 * The modules a file loads by {@linkcode moduleUrl} (a literal path, or a
 * path in the commands' folder built from a name), which the release bundle
 * must hold as entries of their own; literal relative `import()`s the bundle
 * follows by itself.
 *
 * @throws when the file loads something in a way the bundle cannot carry: a
 * dynamic `import(…)` of another form, or a file found beside the module by
 * `new URL(…, import.meta.url)`
 */
export function runTimeLoadsOf(file: string, source: string): RunTimeLoad[] {
  const loads: RunTimeLoad[] = [];
  const siteOf = (index: number) => `${file}:${source.slice(0, index).split("\n").length}`;
  for (
    const call of source.matchAll(
      /\bmoduleUrl\(\s*(?:"([^"]+)"|`\$\{COMMANDS_FOLDER\}\/\$\{\w+\}`)/g,
    )
  ) {
    loads.push({ site: siteOf(call.index), module: call[1] ?? COMMANDS_FOLDER });
  }
  for (const url of source.matchAll(/new URL\([^)]*import\.meta\.url/g)) {
    assert.fail(
      `${siteOf(url.index)}: a file found beside the module, which the bundle does not carry; ` +
        "load it through moduleUrl (lib/module_urls.ts)",
    );
  }
  for (const call of source.matchAll(/\bimport\(\s*(?:(["'])([^"']*)\1|([^\n]{0,20}))/g)) {
    const [, , literal, other] = call;
    assert.ok(
      literal !== undefined || other.startsWith("moduleUrl("),
      `${siteOf(call.index)}: a dynamic import the bundle cannot follow (import(${other}…)); ` +
        "load by a literal or by moduleUrl (lib/module_urls.ts)",
    );
  }
  return loads;
}

/** The bare (import-map) specifiers a module imports, statically or dynamically. */
export function bareImportsOf(source: string): string[] {
  const found = new Set<string>();
  for (const match of source.matchAll(/(?:\bfrom|\bimport\(?)\s*["']([^"'.][^"']*)["']/g)) {
    const specifier = match[1];
    if (specifier.startsWith("node:")) continue;
    found.add(specifier);
  }
  return [...found];
}

/** The program's own source files: main.ts and every module under lib/. */
function programSources(): string[] {
  return ["main.ts", ...filesUnder("lib").filter((path) => path.endsWith(".ts"))];
}

/**
 * The npm packages (`name@version`) behind `specifiers`, through deno.json's
 * import map, with every package they depend on according to deno.lock.
 */
function npmPackagesOf(specifiers: string[]): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const lock = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.lock`));
  const lockKeys = Object.keys(lock.npm ?? {});
  const pending: string[] = [];
  for (const specifier of specifiers) {
    const mapped: string | undefined = config.imports?.[specifier] ??
      (specifier.startsWith("npm:") ? specifier : undefined);
    assert.ok(mapped, `"${specifier}" is not in deno.json's import map`);
    if (!mapped.startsWith("npm:")) continue;
    pending.push(mapped.slice(4).replace(/\/.*$/, ""));
  }
  const packages = new Set<string>();
  while (pending.length > 0) {
    const wanted = pending.pop()!;
    // deno.lock names a dependency by name alone when only one version of it is locked.
    const key = lockKeys.find((k) => k === wanted) ??
      lockKeys.find((k) => k.slice(0, k.lastIndexOf("@")) === wanted);
    assert.ok(key, `${wanted} is not in deno.lock`);
    if (packages.has(key)) continue;
    packages.add(key);
    pending.push(...(lock.npm[key].dependencies ?? []));
  }
  return [...packages].sort();
}

/**
 * Runs deno.json's compile task as it stands, with its bundle and binary in
 * `dir`, on the offline base binary; returns what it printed.
 */
async function compileInto(dir: string): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task: string = config.tasks.compile;
  const words = task.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "run"], `the compile task: ${task}`);
  const result = await new Deno.Command(Deno.execPath(), {
    args: [...words.slice(1), "--outdir", `${dir}/bundle`, "--output", `${dir}/queuectl`],
    cwd: ROOT,
    env: { DENORT_BIN: Deno.execPath(), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(result.stdout) + new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, `deno task compile failed:\n${text}`);
  return text;
}

/** `path` from the nearest folder that holds both `path` and `other` (absolute paths). */
function pathFromCommonFolder(other: string, path: string): string {
  const a = other.split("/").filter((part) => part !== "");
  const b = path.split("/").filter((part) => part !== "");
  let shared = 0;
  while (shared < a.length && shared < b.length && a[shared] === b[shared]) shared++;
  return b.slice(shared).join("/");
}

/** The program's sources that may load modules at run time (lib/module_urls.ts says where). */
function loadingSources(): string[] {
  return programSources().filter((file) => file !== "lib/module_urls.ts");
}

Deno.test({
  name: "deno task compile embeds the release bundle and every npm package the program imports",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "queuectl-compile-" });
    try {
      const tree = parseEmbeddedTree(await compileInto(dir));
      // The tree names paths from the folder that holds everything embedded: the project's and
      // the temp dir's nearest common folder.
      assert.ok(
        isEmbedded(tree, `${pathFromCommonFolder(ROOT, dir)}/bundle`),
        `the bundle is embedded, whole:\n${JSON.stringify(tree)}`,
      );
      assert.ok(Deno.statSync(`${dir}/bundle/main.js`).isFile, "the binary's entry");

      const bare = new Set(
        programSources().flatMap((file) => bareImportsOf(Deno.readTextFileSync(`${ROOT}${file}`))),
      );
      const packages = npmPackagesOf([...bare]);
      for (const wanted of ["postgres@3.4.10", "cli-progress@3.12.0"]) {
        assert.ok(packages.includes(wanted), `the check no longer finds ${wanted} imported`);
      }
      const missingPackages = packages.filter((pkg) => {
        const at = pkg.lastIndexOf("@");
        return !isEmbedded(tree, `${NPM_ROOT}/${pkg.slice(0, at)}/${pkg.slice(at + 1)}`);
      });
      assert.deepEqual(missingPackages, [], "npm packages not embedded in the binary");
      // Packages only the tests use (playwright-core, 13 MB) stay out of the binary.
      const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
      const testOnly = Object.keys(config.imports ?? {}).filter((name) => !bare.has(name));
      assert.ok(testOnly.includes("playwright-core"), "the check no longer finds a test-only one");
      for (const pkg of npmPackagesOf(testOnly).filter((name) => !packages.includes(name))) {
        const at = pkg.lastIndexOf("@");
        assert.ok(
          !isEmbedded(tree, `${NPM_ROOT}/${pkg.slice(0, at)}/${pkg.slice(at + 1)}`),
          `${pkg}, which only the tests import, is embedded in the binary`,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("every module loaded by a URL built at run time is an entry of the release bundle", () => {
  const loads = loadingSources().flatMap((file) =>
    runTimeLoadsOf(file, Deno.readTextFileSync(`${ROOT}${file}`))
  );
  const modules = new Set(loads.map((load) => load.module));
  // The shapes this project relies on, so that a broken discovery cannot pass unseen.
  for (
    const module of ["lib/worker/runner", "lib/cli/help", "lib/store/pg_store", COMMANDS_FOLDER]
  ) {
    assert.ok(modules.has(module), `the check no longer finds how ${module} is loaded`);
  }
  const entries: readonly string[] = [...ON_DEMAND_MODULES, COMMANDS_FOLDER];
  const strays = loads.filter((load) => !entries.includes(load.module));
  assert.deepEqual(
    strays,
    [],
    "loaded at run time but not in ON_DEMAND_MODULES (lib/module_urls.ts)",
  );
  for (const module of ON_DEMAND_MODULES) {
    assert.ok(Deno.statSync(`${ROOT}${module}.ts`).isFile, `${module}.ts exists`);
  }
});

Deno.test("the embedded-files check reads deno compile's tree, and the load check its sources", () => {
  const output = [
    "Compile ../../tmp/x/bundle/main.js to ../../tmp/x/queuectl",
    "",
    "Embedded Files",
    "",
    "queuectl",
    "├─┬ .deno_compile_node_modules (293.37KB - 287.69KB unique)",
    "│ └─┬ localhost (293.37KB - 287.69KB unique)",
    "│   └── postgres/3.4.10/* (293.37KB - 287.69KB unique)",
    "├── tmp/x/bundle/* (381.37KB)",
    "└── work/main (0B)",
    "",
    "Files: 1.64MB",
  ].join("\n");
  const tree = parseEmbeddedTree(output);
  assert.ok(isEmbedded(tree, "tmp/x/bundle"));
  assert.ok(isEmbedded(tree, "tmp/x/bundle/lib/cli/help.js"), "bundle/* is the whole folder");
  assert.ok(isEmbedded(tree, `${NPM_ROOT}/postgres/3.4.10`));
  assert.ok(!isEmbedded(tree, `${NPM_ROOT}/postgres/3.4.9`));
  assert.ok(!isEmbedded(tree, "tmp/y/bundle"));

  const source = [
    'const help = () => import(moduleUrl("lib/cli/help"));',
    "const load = (name: string) => import(moduleUrl(`${COMMANDS_FOLDER}/${name}`));",
    'const m = () => import("./sqlite_claim.ts");',
  ].join("\n");
  assert.deepEqual(runTimeLoadsOf("lib/cli/main.ts", source), [
    { site: "lib/cli/main.ts:1", module: "lib/cli/help" },
    { site: "lib/cli/main.ts:2", module: COMMANDS_FOLDER },
  ]);
  assert.throws(
    () => runTimeLoadsOf("lib/x.ts", "const m = await import(specifier);"),
    /a dynamic import the bundle cannot follow/,
  );
  assert.throws(
    () => runTimeLoadsOf("lib/x.ts", 'new Worker(new URL("./w.ts", import.meta.url));'),
    /a file found beside the module/,
  );
});
