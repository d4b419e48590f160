/**
 * tools/eager_compile.ts: functions marked for V8 to compile with their
 * module behave exactly as before; only the functions named are marked.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseModule } from "../tools/syntax.ts";
import { markEagerFunctions } from "../tools/eager_compile.ts";

const MODULE = `
export const early = declared(2);
function declared(x) { return [x, x + 1].map((y) => y * 10).filter(function (z) { return z > 0; }).length + inner(); function inner() { return 5; } }
export function exported(n) { const add = (a) => (b) => a + b; return add(n)(1); }
function cold(x) { return x - 1; }
export const object = { method() { return 1; }, get value() { return 2; }, arrow: () => 3, plain: function () { return 4; } };
export class Thing { method() { return (() => 6)(); } static field = () => 7; }
export const wrapped = (() => 8);
export async function* counter() { yield 9; }
export const block = (() => { const k = helper(); function helper() { return 10; } return k; })();
export function selfish() { selfish = () => "second"; return "first"; }
export const twiceValue = (() => {
  function twice() { return 1; }
  function twice() { return 2; }
  return twice();
})();
export { cold, declared };
`;

/** The offsets where the functions of `code` whose source starts with one of `starts` end. */
function endsOf(code: string, starts: string[]): Set<number> {
  const ends = new Set<number>();
  const found = new Set<string>();
  function visit(node: unknown): void {
    if (typeof node !== "object" || node === null) return;
    const { type, start, end } = node as { type?: string; start: number; end: number };
    if (typeof type === "string" && /Function/.test(type)) {
      for (const prefix of starts) {
        if (code.startsWith(prefix, start)) {
          ends.add(end);
          found.add(prefix);
        }
      }
    }
    for (const value of Object.values(node)) {
      for (const child of Array.isArray(value) ? value : [value]) visit(child);
    }
  }
  visit(parseModule(code));
  assert.deepEqual([...found].sort(), [...starts].sort(), "every function named is found");
  return ends;
}

async function evaluate(code: string): Promise<unknown[]> {
  const module = await import(`data:text/javascript,${encodeURIComponent(code)}`);
  const generated: unknown[] = [];
  for await (const value of module.counter()) generated.push(value);
  return [
    module.early,
    module.exported(4),
    module.cold(3),
    module.declared(1),
    module.object.method(),
    module.object.value,
    module.object.arrow(),
    module.object.plain(),
    new module.Thing().method(),
    module.Thing.field(),
    module.wrapped(),
    generated,
    module.block,
    [module.selfish(), module.selfish(), module.selfish.name],
    module.twiceValue,
    module.declared.name,
  ];
}

Deno.test("eager compile: marked functions behave as before, the rest stay as written", async () => {
  const hot = endsOf(MODULE, [
    "function declared",
    "function inner",
    "function exported",
    "(a) => (b) => a + b",
    "function (z)",
    "() { return 1",
    "function () { return 4",
    "async function* counter",
    "function helper",
    "function selfish",
    "function twice() { return 1",
  ]);
  const marked = markEagerFunctions(MODULE, hot);
  assert.deepEqual(await evaluate(marked), await evaluate(MODULE));
  // Declarations become parenthesized expressions at the top of their body, hoisted by hand.
  // Without names of their own: inside, the name is the body's binding, which `selfish` reassigns.
  assert.match(marked, /^var declared = \(function \(x\) \{ var inner = \(function \(\)/m);
  assert.match(marked, /^export var exported = \(function \(n\)/m);
  assert.match(marked, /^export var counter = \(async function\* \(\)/m);
  assert.match(marked, /^export var selfish = \(function \(\) \{ selfish = /m);
  assert.ok(marked.indexOf("var declared") < marked.indexOf("export const early"));
  assert.match(
    marked,
    /\{ var helper = \(function \(\) \{ return 10; \}\);\nconst k = helper/,
  );
  // Expressions are wrapped where they stand, arguments of calls included.
  // Functions are named by where they end: an arrow returning an arrow is marked with it.
  assert.match(marked, /const add = \(\(a\) => \(\(b\) => a \+ b\)\);/);
  assert.match(marked, /\.filter\(\(function \(z\)/);
  assert.match(marked, /plain: \(function \(\) \{ return 4; \}\)/);
  // Not named hot, not wrappable (methods), or a name declared twice: as written.
  assert.match(marked, /^function cold\(x\)/m);
  assert.match(
    marked,
    /^ {2}function twice\(\) \{ return 1; \}\n {2}function twice\(\) \{ return 2; \}/m,
  );
  assert.match(marked, /\.map\(\(y\) => y \* 10\)/);
  assert.match(marked, /\{ method\(\) \{ return 1; \}/);
  assert.match(marked, /arrow: \(\) => 3/);
  assert.equal(markEagerFunctions(MODULE, new Set()), MODULE);
});

Deno.test("eager compile: an already parenthesized function is not wrapped twice", () => {
  const code = "export const f = (() => 1);\nexport const g = (function () { return 2; })();\n";
  const hot = new Set([code.indexOf("1)") + 1, code.indexOf("2; }") + 4]);
  assert.equal(markEagerFunctions(code, hot), code);
});
