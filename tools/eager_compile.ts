/**
 * Marks functions of the release bundle for V8 to compile with their
 * module, so that Deno's code cache holds them, rather than on their first
 * call: the functions a start-up profile saw run (tools/startup_profile.ts).
 *
 * Why: V8 compiles a function the first time it is called, unless the
 * function expression is wrapped in parentheses (its "likely called at once"
 * hint). Deno stores a module's code cache right after compiling the module,
 * so it holds the bytecode of what was compiled then and no more: every
 * function a command called was compiled again at every start. Measured on a
 * single `enqueue` (2 cores, Deno 2.9.6): some 70 functions of the start-up
 * code, about 1 ms of its wall time. Marking every function instead cost
 * 0.5 ms more than marking those that run: the code cache then holds the
 * bytecode of the 80% of the code that `enqueue` never calls, and reading
 * it is not free.
 *
 * What changes, for a marked function only:
 * - a declaration `function f() {}` (or `export function`), at the top of a
 *   module or of a function's body, becomes `var f = (function () {});`,
 *   moved to the top of that body, so that a call from code above its old
 *   place still finds it (declarations are hoisted; a `var` assignment is
 *   not). The expression has no name of its own: inside it `f` is still the
 *   binding of the body, which the function may reassign, and `f.name` is
 *   still "f" (a `var` names the anonymous function it is given). A name
 *   declared twice in one body is left alone (the last declaration wins).
 *   Across files the bundle's imports hold no cycle (tools/bundle_merge.ts's
 *   `findImportCycle` checks), so every module a file imports has
 *   run to its end before the file's body starts: no call can reach a
 *   function before its assignment.
 * - a function expression or arrow function is wrapped in parentheses where
 *   it stands (class and object methods are left: they cannot be).
 *
 * @module
 */

import { childrenOf, type Node, parseModule } from "./syntax.ts";

/** Whether the function expression `fn`, a child of `parent`, can be wrapped in parentheses. */
function canWrap(fn: Node, parent: Node): boolean {
  // A method's function is part of the method's syntax: `m() {}`, `get x() {}`.
  if (parent.type === "MethodDefinition") return false;
  if (parent.type === "Property" && parent.value === fn) {
    return !(parent.method as boolean) && parent.kind === "init";
  }
  return true;
}

/**
 * One change to the source: parentheses around a function expression, a
 * function declaration taken from its place (`move`), or the place at the
 * top of a body where that body's declarations go (`place`, zero wide).
 */
type Edit =
  | { kind: "wrap"; start: number; end: number }
  | { kind: "move"; start: number; end: number }
  | { kind: "place"; start: number; end: number; functions: Moved[] };

/** A function declaration moved to the top of its body, and the edit that took it away. */
interface Moved {
  fn: Node;
  exported: boolean;
  move: Edit;
}

/** The statement at which a body's moved declarations go: after its imports and directives. */
function placeIn(body: Node[], fallback: number): number {
  const first = body.find((statement) =>
    statement.type !== "ImportDeclaration" && statement.directive === undefined
  );
  return first?.start ?? fallback;
}

/**
 * The source `code` of one ES module with the functions that end at the
 * offsets `hot` marked for eager compilation (see the top of this module).
 * Throws a SyntaxError for code that is not a module acorn can parse.
 */
export function markEagerFunctions(code: string, hot: ReadonlySet<number>): string {
  // Parentheses kept as nodes: a function already inside a pair is marked already.
  const program = parseModule(code, true);
  const edits: Edit[] = [];

  /** Moves the function declarations of a body (a module's or a function's) to its top. */
  function hoistFrom(body: Node[], end: number): void {
    const functions: Moved[] = [];
    const declarationOf = (statement: Node) =>
      (statement.type === "ExportNamedDeclaration" ? statement.declaration : statement) as
        | Node
        | null;
    const names = body.map(declarationOf).filter((node) => node?.type === "FunctionDeclaration")
      .map((node) => (node!.id as Node & { name: string }).name);
    for (const statement of body) {
      const exported = statement.type === "ExportNamedDeclaration";
      const declaration = declarationOf(statement);
      if (declaration?.type !== "FunctionDeclaration" || !hot.has(declaration.end)) continue;
      const name = (declaration.id as Node & { name: string }).name;
      if (names.indexOf(name) !== names.lastIndexOf(name)) continue;
      const move: Edit = { kind: "move", start: statement.start, end: statement.end };
      functions.push({ fn: declaration, exported, move });
      edits.push(move);
    }
    if (functions.length === 0) return;
    const at = placeIn(body, end);
    edits.push({ kind: "place", start: at, end: at, functions });
  }

  function visit(node: Node, parent: Node | null): void {
    const isExpression = node.type === "FunctionExpression" ||
      node.type === "ArrowFunctionExpression";
    if (
      isExpression && hot.has(node.end) && parent !== null &&
      parent.type !== "ParenthesizedExpression" && canWrap(node, parent)
    ) {
      edits.push({ kind: "wrap", start: node.start, end: node.end });
    }
    const isFunction = isExpression || node.type === "FunctionDeclaration";
    const body = node.body as Node | undefined;
    if (isFunction && body?.type === "BlockStatement") hoistFrom(body.body as Node[], body.end - 1);
    for (const child of childrenOf(node)) visit(child, node);
  }

  hoistFrom(program.body as Node[], code.length);
  visit(program, null);
  if (edits.length === 0) return code;
  // By start; at one place a zero-wide `place` first, then the wider edit (the outer) first.
  edits.sort((a, b) =>
    a.start - b.start || (a.end - a.start === 0 ? -1 : 0) - (b.end - b.start === 0 ? -1 : 0) ||
    b.end - a.end
  );

  /** `code[from, to)` with the edits that lie inside it applied, except `skip` itself. */
  function render(from: number, to: number, skip?: Edit): string {
    let out = "";
    let at = from;
    let coveredTo = from;
    for (const edit of edits) {
      if (edit === skip || edit.start < from || edit.end > to) continue;
      // The place a moved declaration goes to may be where it stood: it is not inside it.
      if (skip?.kind === "move" && edit.kind === "place" && edit.start === from) continue;
      // Inside an edit already rendered, whose own render applied it.
      if (edit.start < coveredTo) continue;
      out += code.slice(at, edit.start);
      if (edit.kind === "wrap") out += `(${render(edit.start, edit.end, edit)})`;
      else if (edit.kind === "place") {
        for (const { fn, exported, move } of edit.functions) {
          const id = fn.id as Node & { name: string };
          // No edit lies before the name: everything marked is in the parameters or the body.
          const text = render(fn.start, fn.end, move);
          const anonymous = text.slice(0, id.start - fn.start).trimEnd() + " " +
            text.slice(id.end - fn.start).trimStart();
          out += `${exported ? "export " : ""}var ${id.name} = (${anonymous});\n`;
        }
      }
      at = edit.end;
      coveredTo = Math.max(coveredTo, edit.end);
    }
    return out + code.slice(at, to);
  }
  return render(0, code.length);
}
