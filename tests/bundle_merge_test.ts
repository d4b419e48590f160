/**
 * tools/bundle_merge.ts on a small bundle of real files run by Deno: the
 * chunks the start-up files import are folded into core.js, every import of
 * them now names core.js, and the program prints what it printed before.
 * What the fold cannot keep true (an exported binding reassigned, a chunk
 * awaiting at its top level) stops the build.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CORE_FILE, findImportCycle, mergeStartupChunks } from "../tools/bundle_merge.ts";

/** A bundle as esbuild writes one: entry files, chunks they share, an entry loaded later. */
const BUNDLE: Record<string, string> = {
  "main.js": [
    'import { greet } from "./chunk-A.js";',
    'import "./chunk-B.js";',
    'import { label as shown } from "./chunk-B.js";',
    "console.log(greet(shown));",
    'const later = await import("./lib/later.js");',
    "console.log(later.twice(21), later.same);",
    "",
  ].join("\n"),
  "chunk-A.js": [
    'import { DatabaseSync } from "node:sqlite";',
    'import * as path from "node:path";',
    'var prefix = "hi ";',
    "function greet(name) { return prefix + name + ' ' + typeof DatabaseSync + ' ' + path.sep; }",
    "var count = 0;",
    "function bump() { let count = 1; count += 1; return count; }",
    "export { bump, greet, prefix as PREFIX };",
    "",
  ].join("\n"),
  "chunk-B.js": [
    'import { PREFIX, bump } from "./chunk-A.js";',
    "var twice = (n) => n * 2;",
    "var label = PREFIX.trim() + bump();",
    "var greet = 'a name chunk-A uses too';",
    "export { greet as other, label, twice };",
    "",
  ].join("\n"),
  "chunk-C.js":
    'import { twice } from "./chunk-B.js";\nvar same = twice(1) === 2;\nexport { same };\n',
  "lib/later.js": [
    'import { same } from "../chunk-C.js";',
    'export { twice } from "../chunk-B.js";',
    "export { same };",
    "",
  ].join("\n"),
};

async function withBundle(
  files: Record<string, string>,
  fn: (dir: string, read: () => Map<string, string>) => Promise<void>,
): Promise<void> {
  // A space and a comma in the path: what a URL or V8's log spells otherwise.
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "bundle merge, " }));
  try {
    for (const [path, code] of Object.entries(files)) {
      await Deno.mkdir(`${dir}/${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.writeTextFile(`${dir}/${path}`, code);
    }
    const read = () => new Map(Object.keys(files).map((path) => [`${dir}/${path}`, files[path]]));
    await fn(dir, read);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function runMain(dir: string): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", `${dir}/main.js`],
    stderr: "inherit",
  }).output();
  assert.equal(output.code, 0);
  return new TextDecoder().decode(output.stdout);
}

Deno.test("bundle merge: the start-up chunks fold into core.js and the program runs as before", async () => {
  await withBundle(BUNDLE, async (dir, read) => {
    const before = await runMain(dir);
    assert.equal(before, `hi hi2 function /\n42 true\n`);
    // The entry loaded later is a root too (as the enqueue command is): its chunks fold as well.
    const merged = mergeStartupChunks(dir, read(), [`${dir}/main.js`, `${dir}/lib/later.js`]);
    assert.deepEqual([...merged.keys()].sort(), [
      `${dir}/${CORE_FILE}`,
      `${dir}/lib/later.js`,
      `${dir}/main.js`,
    ]);
    for (const path of Object.keys(BUNDLE)) await Deno.remove(`${dir}/${path}`);
    for (const [path, code] of merged) await Deno.writeTextFile(path, code);
    assert.equal(await runMain(dir), before);
    const main = merged.get(`${dir}/main.js`)!;
    assert.doesNotMatch(main, /chunk-/);
    assert.match(main, /import \{ __fold_chunk_A\$greet as greet \} from "\.\/core\.js";/);
    assert.equal(main.match(/from "\.\/core\.js"|import "\.\/core\.js"/g)?.length, 2);
    const later = merged.get(`${dir}/lib/later.js`)!;
    assert.match(later, /import \{ __fold_chunk_C\$same as same \} from "\.\.\/core\.js";/);
    assert.match(later, /export \{ __fold_chunk_B\$twice as twice \} from "\.\.\/core\.js";/);
    // One namespace per package, whatever the number of chunks importing it.
    assert.equal(merged.get(`${dir}/${CORE_FILE}`)!.match(/^import /gm)?.length, 2);
  });
});

Deno.test("bundle merge: what folding cannot keep true stops it, named", async () => {
  /** chunk-A with `statement` added at its top level, after its exports are declared. */
  const chunkAWith = (statement: string) => ({
    "chunk-A.js": BUNDLE["chunk-A.js"].replace("var count = 0;", `var count = 0;\n${statement}`),
  });
  const reassigned = /chunk-A\.js exports 'prefix' and reassigns it/;
  const refusals: [string, Record<string, string>, RegExp][] = [
    ["an exported binding assigned", chunkAWith('prefix = "yo ";'), reassigned],
    ["one assigned by destructuring", chunkAWith('[prefix] = ["yo "];'), reassigned],
    ["one assigned by a for-of loop", chunkAWith('for (prefix of ["a"]);'), reassigned],
    [
      "a top-level await",
      { "chunk-C.js": `${BUNDLE["chunk-C.js"]}await null;\n` },
      /chunk-C\.js awaits at its top level/,
    ],
    [
      "a folded chunk imported as a namespace",
      { "lib/later.js": `import * as b from "../chunk-B.js";\n${BUNDLE["lib/later.js"]}` },
      /imported or exported whole/,
    ],
    [
      "a name with the prefix the fold adds",
      { "chunk-B.js": `var __fold_chunk_A = 1;\n${BUNDLE["chunk-B.js"]}` },
      /uses the prefix __fold_/,
    ],
  ];
  for (const [what, change, error] of refusals) {
    await withBundle({ ...BUNDLE, ...change }, (dir, read) => {
      assert.throws(
        () => mergeStartupChunks(dir, read(), [`${dir}/main.js`, `${dir}/lib/later.js`]),
        error,
        what,
      );
      return Promise.resolve();
    });
  }
});

Deno.test("bundle merge: findImportCycle names a cycle of static imports, and none in a chain", () => {
  const chain = new Map([
    ["/b/main.js", 'import { a } from "./a.js";\nimport("./lazy.js");\n'],
    ["/b/a.js", 'import { c } from "./lib/c.js";\nexport const a = c;\n'],
    ["/b/lib/c.js", 'export const c = 1;\nexport { x } from "node:x";\n'],
    ["/b/lazy.js", 'import "./main.js";\n'],
  ]);
  assert.equal(findImportCycle(chain), undefined, "a dynamic import makes no cycle");
  const cyclic = new Map(chain);
  cyclic.set("/b/lib/c.js", 'import { a } from "../a.js";\nexport const c = 1;\n');
  assert.deepEqual(findImportCycle(cyclic), ["/b/a.js", "/b/lib/c.js", "/b/a.js"]);
});
