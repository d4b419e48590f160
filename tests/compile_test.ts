/**
 * `deno task compile` checked offline. A real compile needs Deno's download
 * server for its base runtime (denort); with `DENORT_BIN` pointing at the full
 * `deno` executable the whole compile still runs (type check, module graph, npm
 * packages, the included files) and prints the "Embedded Files" tree, which is
 * exactly what a release binary would contain. The binary it writes does not
 * run queuectl (the full executable ignores the payload), so these tests read
 * the tree: everything the program loads lazily, by a specifier Deno cannot
 * see at compile time, must be in it, or a release binary fails the first time
 * it takes that path.
 *
 * @module
 */

import assert from "node:assert/strict";

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

/** Where a module of the program loads something, and what it loads. */
export interface LazyLoad {
  /** `file:line`, for messages. */
  site: string;
  /** The files it may load, relative to the project. */
  files: string[];
}

/** A relative module specifier, resolved against the project-relative `from`. */
function resolveRelative(from: string, specifier: string): string {
  const url = new URL(specifier, new URL(from, "file:///"));
  return url.pathname.slice(1);
}

/**
 * The files a module reaches at run time relative to itself, which `deno compile`
 * embeds only when told to: every `new URL("…", import.meta.url)` (a Web Worker,
 * an import by a built specifier, an asset read from beside the module), and
 * literal relative `import("…")`s. A template (`./commands/${name}.ts`) stands
 * for every file of that directory it can name.
 *
 * @throws when a dynamic `import(…)` has a form this check cannot follow
 */
export function lazyLoadsOf(file: string, source: string): LazyLoad[] {
  const loads: LazyLoad[] = [];
  source.split("\n").forEach((text, index) => {
    const site = `${file}:${index + 1}`;
    for (const url of text.matchAll(/new URL\(\s*(["'`])(.+?)\1,\s*import\.meta\.url/g)) {
      const specifier = url[2];
      const hole = specifier.indexOf("${");
      if (hole === -1) {
        loads.push({ site, files: [resolveRelative(file, specifier)] });
        continue;
      }
      const prefix = resolveRelative(file, specifier.slice(0, hole));
      const suffix = specifier.slice(specifier.indexOf("}", hole) + 1);
      const dir = prefix.slice(0, prefix.lastIndexOf("/"));
      const files = filesUnder(dir).filter((path) =>
        path.startsWith(prefix) && path.endsWith(suffix) &&
        !path.slice(prefix.length, path.length - suffix.length).includes("/")
      );
      assert.ok(files.length > 0, `${site}: ${specifier} names no file`);
      loads.push({ site, files });
    }
  });
  // A multi-line `import(\n  new URL(…)` is followed above; a specifier in a variable is not.
  for (const call of source.matchAll(/\bimport\(\s*(?:(["'])([^"']*)\1|([^\n]{0,20}))/g)) {
    const [, , literal, other] = call;
    const site = `${file}:${source.slice(0, call.index).split("\n").length}`;
    if (literal !== undefined) {
      if (literal.startsWith(".")) loads.push({ site, files: [resolveRelative(file, literal)] });
    } else {
      assert.ok(
        other.startsWith("new URL("),
        `${site}: a dynamic import this check cannot follow (import(${other}…)); ` +
          "load by a literal or by new URL(…, import.meta.url)",
      );
    }
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

/** Runs deno.json's compile task as it stands, writing into `dir`, with the offline base binary. */
async function compileInto(dir: string): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task: string = config.tasks.compile;
  const words = task.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "compile"], `the compile task: ${task}`);
  const output = words.indexOf("--output");
  assert.ok(output !== -1, `the compile task names no --output: ${task}`);
  words[output + 1] = `${dir}/queuectl`;
  const result = await new Deno.Command(Deno.execPath(), {
    args: words.slice(1),
    cwd: ROOT,
    env: { DENORT_BIN: Deno.execPath(), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(result.stdout) + new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, `deno compile failed:\n${text}`);
  return text;
}

Deno.test({
  name: "deno task compile embeds the Web Worker, every lazily loaded module and npm package",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "queuectl-compile-" });
    try {
      const tree = parseEmbeddedTree(await compileInto(dir));

      const loads = programSources().flatMap((file) =>
        lazyLoadsOf(file, Deno.readTextFileSync(`${ROOT}${file}`))
      );
      const loaded = new Set(loads.flatMap((load) => load.files));
      // The shapes this project relies on, so that a broken discovery cannot pass unseen.
      for (
        const file of [
          "lib/worker/runner.ts",
          "lib/cli/commands/worker_start.ts",
          "lib/cli/help.ts",
          "lib/cli/suggest.ts",
          "lib/cli/follow.ts",
          "lib/store/pg_store.ts",
        ]
      ) {
        assert.ok(loaded.has(file), `the check no longer finds how ${file} is loaded`);
      }
      const missing = [...loaded].filter((file) => !isEmbedded(tree, file)).map((file) =>
        `${file} (loaded at ${
          loads.filter((load) => load.files.includes(file)).map((load) => load.site).join(", ")
        })`
      );
      assert.deepEqual(
        missing,
        [],
        "not embedded in the binary: add them to deno.json's compile.include",
      );

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
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the embedded-files check reports a lazily loaded module the tree lacks", () => {
  // A tree as deno compile prints it, with lib/cli/help.ts and one command missing.
  const output = [
    "Compile main.ts to file:///tmp/x/queuectl",
    "",
    "Embedded Files",
    "",
    "queuectl",
    "├─┬ .deno_compile_node_modules (293.37KB - 287.69KB unique)",
    "│ └─┬ localhost (293.37KB - 287.69KB unique)",
    "│   └── postgres/3.4.10/* (293.37KB - 287.69KB unique)",
    "├─┬ lib (1.21MB)",
    "│ ├─┬ cli (414.75KB)",
    "│ │ ├─┬ commands (20KB)",
    "│ │ │ └── enqueue.ts (20KB)",
    "│ │ └── suggest.ts (14.61KB)",
    "│ └── worker/* (221.42KB)",
    "└── main.ts (6.52KB)",
    "",
    "Files: 1.64MB",
  ].join("\n");
  const tree = parseEmbeddedTree(output);
  assert.ok(isEmbedded(tree, "lib/cli/suggest.ts"));
  assert.ok(isEmbedded(tree, "lib/cli/commands/enqueue.ts"));
  assert.ok(isEmbedded(tree, "lib/worker/runner.ts"), "worker/* is the whole directory");
  assert.ok(isEmbedded(tree, `${NPM_ROOT}/postgres/3.4.10`));
  assert.ok(!isEmbedded(tree, `${NPM_ROOT}/postgres/3.4.9`));
  assert.ok(!isEmbedded(tree, "lib/cli/help.ts"));
  assert.ok(!isEmbedded(tree, "lib/cli/commands/list.ts"));

  const source = [
    'const help = () => import(new URL("./help.ts", import.meta.url).href);',
    "const load = (name: string) =>",
    "  import(new URL(`./commands/${name}.ts`, import.meta.url).href);",
  ].join("\n");
  const loads = lazyLoadsOf("lib/cli/main.ts", source);
  const files = loads.flatMap((load) => load.files);
  assert.ok(files.includes("lib/cli/help.ts"));
  assert.ok(files.includes("lib/cli/commands/list.ts"), "a template names every command");
  const missing = files.filter((file) => !isEmbedded(tree, file));
  assert.ok(missing.includes("lib/cli/help.ts") && missing.includes("lib/cli/commands/list.ts"));
  assert.ok(!missing.includes("lib/cli/commands/enqueue.ts"));
  assert.throws(
    () => lazyLoadsOf("lib/x.ts", "const m = await import(specifier);"),
    /a dynamic import this check cannot follow/,
  );
});
