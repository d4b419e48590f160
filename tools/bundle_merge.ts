/**
 * Folds the chunks that the release bundle's start-up path loads into one
 * file, `core.js`, so that `enqueue` reads three files instead of thirty.
 *
 * Why: esbuild's code splitting cuts shared code into one chunk per set of
 * entry points that reach it, and queuectl has some forty entries (each
 * command, each module loaded when needed), so `main.js` and `enqueue`
 * imported 28 chunks. Each file costs Deno about 0.08 ms to load however
 * small it is (measured: 30 modules of 4 KB took 1.9 ms longer to start than
 * one module of the same 108 KB).
 *
 * How, without renaming anything: every chunk that a root (main.js, the
 * enqueue command) imports, directly or not, becomes one arrow function in
 * core.js, run in the order ES modules would run them, that keeps its
 * top-level names in its own scope and returns its exports; core.js exports
 * each of them as `<chunk>$<name>`; every import of such a chunk, in the
 * roots and in every other file, becomes an import of that name from core.js.
 * Preconditions, checked (the build fails otherwise rather than change what
 * the code does): no chunk of core.js awaits at its top level, and none
 * exports a binding it reassigns (the returned value is a copy, not a live
 * binding).
 *
 * @module
 */

import { parse } from "acorn";

/** An acorn syntax node, as much of it as this module reads. */
interface Node {
  type: string;
  start: number;
  end: number;
  [field: string]: unknown;
}

interface Named extends Node {
  name: string;
}

interface Literal extends Node {
  value: string;
}

/** The file that the chunks of the roots are folded into, at the bundle's root. */
export const CORE_FILE = "core.js";

function parseModule(code: string): Node[] {
  return (parse(code, { ecmaVersion: "latest", sourceType: "module" }) as unknown as Node)
    .body as Node[];
}

function isRelative(source: string): boolean {
  return source.startsWith("./") || source.startsWith("../");
}

/** The absolute path that `source`, imported by the file at `from`, names. */
function resolve(from: string, source: string): string {
  return new URL(source, `file://${from}`).pathname;
}

/** `to` as a relative import from the file at `from`. */
function relative(from: string, to: string): string {
  const fromParts = from.split("/").slice(0, -1);
  const toParts = to.split("/");
  let common = 0;
  while (common < fromParts.length && fromParts[common] === toParts[common]) common++;
  const ups = fromParts.length - common;
  return (ups === 0 ? "./" : "../".repeat(ups)) + toParts.slice(common).join("/");
}

/** The name of an import or export specifier's side (an identifier or a string). */
function nameOf(node: unknown): string {
  const named = node as Named & Literal;
  return named.type === "Identifier" ? named.name : named.value;
}

/** The static imports (and re-exports) of a module, as absolute paths of relative sources. */
function staticImports(path: string, body: Node[]): string[] {
  return body.flatMap((statement) => {
    const source = statement.source as Literal | null | undefined;
    if (!source || !isRelative(source.value)) return [];
    return [resolve(path, source.value)];
  });
}

/** Whether `node` holds an `await` outside any function (a top-level await). */
function awaitsAtTopLevel(node: Node): boolean {
  if (node.type === "AwaitExpression" || (node.type === "ForOfStatement" && node.await)) {
    return true;
  }
  if (/Function/.test(node.type)) return false;
  for (const [key, value] of Object.entries(node)) {
    if (key === "type") continue;
    const children = Array.isArray(value) ? value : [value];
    for (const child of children) {
      if (typeof child === "object" && child !== null && typeof child.type === "string") {
        if (awaitsAtTopLevel(child)) return true;
      }
    }
  }
  return false;
}

/** The names assigned anywhere in `node` (`x = …`, `x++`), however deep. */
function assignedNames(node: Node, into = new Set<string>()): Set<string> {
  const target = node.type === "AssignmentExpression"
    ? node.left as Node
    : node.type === "UpdateExpression"
    ? node.argument as Node
    : undefined;
  if (target?.type === "Identifier") into.add((target as Named).name);
  for (const [key, value] of Object.entries(node)) {
    if (key === "type") continue;
    const children = Array.isArray(value) ? value : [value];
    for (const child of children) {
      if (typeof child === "object" && child !== null && typeof child.type === "string") {
        assignedNames(child, into);
      }
    }
  }
  return into;
}

/** A JavaScript identifier for the chunk at `path` (its file name without `.js`). */
function chunkId(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1, -3).replace(/[^A-Za-z0-9_$]/g, "_");
}

/**
 * Folds into `<root>/core.js` the chunks that the files `roots` (absolute
 * paths in `files`, which maps each file of the bundle at `root` to its
 * code) import, and rewrites every import of them. Returns the bundle's
 * files afterwards: the folded chunks gone, core.js added.
 */
export function mergeStartupChunks(
  root: string,
  files: Map<string, string>,
  roots: string[],
): Map<string, string> {
  const bodies = new Map<string, Node[]>();
  for (const [path, code] of files) bodies.set(path, parseModule(code));
  const core = `${root}/${CORE_FILE}`;
  if (files.has(core)) throw new Error(`the bundle already has a file named ${CORE_FILE}`);

  // The chunks to fold, in the order ES modules would run them: each after what it imports.
  const order: string[] = [];
  const seen = new Set<string>(roots);
  function visit(path: string): void {
    for (const target of staticImports(path, bodies.get(path) ?? [])) {
      if (seen.has(target)) continue;
      seen.add(target);
      if (!bodies.has(target)) throw new Error(`${path} imports ${target}, not in the bundle`);
      visit(target);
      order.push(target);
    }
  }
  for (const path of roots) visit(path);
  const folded = new Set(order);
  for (const [path, body] of bodies) {
    for (const statement of body) {
      if (
        statement.type === "ExportAllDeclaration" || statement.type === "ExportDefaultDeclaration"
      ) {
        const source = statement.source as Literal | null;
        if (folded.has(path) || (source && folded.has(resolve(path, source.value)))) {
          throw new Error(`${path}: ${statement.type} cannot be folded into ${CORE_FILE}`);
        }
      }
    }
  }

  const out = new Map(files);
  const coreParts: string[] = [];
  /** The namespace object of each package or built-in module that folded chunks import. */
  const externals = new Map<string, string>();
  /** The names core.js exports, `<chunk>$<name>`, each bound from its chunk's returned object. */
  const coreExports: string[] = [];
  const bindings: string[] = [];
  for (const path of order) {
    const code = files.get(path)!;
    const body = bodies.get(path)!;
    const id = chunkId(path);
    const head: string[] = [];
    const returned: { name: string; local: string }[] = [];
    let text = "";
    let at = 0;
    for (const statement of body) {
      if (awaitsAtTopLevel(statement)) throw new Error(`${path} awaits at its top level`);
      const source = statement.source as Literal | null | undefined;
      if (statement.type === "ImportDeclaration") {
        const from = source!.value;
        let object = `__${chunkId(resolve(path, from))}`;
        if (!isRelative(from)) {
          object = externals.get(from) ?? `__external${externals.size}`;
          externals.set(from, object);
        }
        for (const specifier of statement.specifiers as Node[]) {
          const local = (specifier.local as Named).name;
          if (specifier.type === "ImportNamespaceSpecifier") {
            head.push(`const ${local} = ${object};`);
            continue;
          }
          const imported = specifier.type === "ImportDefaultSpecifier"
            ? "default"
            : nameOf(specifier.imported);
          head.push(`const { ${JSON.stringify(imported)}: ${local} } = ${object};`);
        }
      } else if (statement.type === "ExportNamedDeclaration") {
        if (statement.declaration) {
          throw new Error(`${path}: an exported declaration cannot be folded (esbuild emits none)`);
        }
        for (const specifier of statement.specifiers as Node[]) {
          const local = nameOf(specifier.local);
          returned.push({
            name: nameOf(specifier.exported),
            local: source
              ? `__${chunkId(resolve(path, source.value))}[${JSON.stringify(local)}]`
              : local,
          });
        }
      } else {
        continue;
      }
      text += code.slice(at, statement.start);
      at = statement.end;
    }
    text += code.slice(at);
    // A returned value is a copy: an exported binding must never change after the chunk ran.
    const reassigned = assignedNames({ type: "Program", start: 0, end: 0, body } as Node);
    for (const { local } of returned) {
      if (reassigned.has(local)) throw new Error(`${path} exports '${local}' and reassigns it`);
    }
    const members = returned.map(({ name, local }) => `${JSON.stringify(name)}: ${local}`);
    coreParts.push(
      `// ${relative(core, path)}\nconst __${id} = (() => {\n${head.join("\n")}\n${text}\n` +
        `return { ${members.join(", ")} };\n})();\n`,
    );
    for (const { name } of returned) {
      coreExports.push(`${id}$${name}`);
      bindings.push(`const { ${JSON.stringify(name)}: ${id}$${name} } = __${id};`);
    }
    out.delete(path);
  }
  out.set(
    core,
    [
      "// The chunks that start-up loads, folded into one file by tools/bundle_merge.ts.",
      ...[...externals].map(([from, object]) =>
        `import * as ${object} from ${JSON.stringify(from)};`
      ),
      ...coreParts,
      ...bindings,
      `export { ${coreExports.join(", ")} };`,
      "",
    ].join("\n"),
  );

  // Every other file imports what it took from the folded chunks from core.js instead.
  for (const [path, code] of out) {
    if (path === core) continue;
    const body = bodies.get(path)!;
    let text = "";
    let at = 0;
    let coreImported = false;
    for (const statement of body) {
      const source = statement.source as Literal | null | undefined;
      if (!source || !isRelative(source.value)) continue;
      const target = resolve(path, source.value);
      if (!folded.has(target)) continue;
      const id = chunkId(target);
      const specifiers = (statement.specifiers as Node[] | undefined) ?? [];
      const coreSource = JSON.stringify(relative(path, core));
      let replacement: string;
      if (statement.type === "ImportDeclaration") {
        const parts = specifiers.map((specifier) => {
          if (specifier.type !== "ImportSpecifier") {
            throw new Error(`${path}: a ${specifier.type} of a folded chunk is not supported`);
          }
          return `${id}$${nameOf(specifier.imported)} as ${(specifier.local as Named).name}`;
        });
        // core.js runs once, whatever the number of imports naming it.
        replacement = parts.length > 0
          ? `import { ${parts.join(", ")} } from ${coreSource};`
          : coreImported
          ? ""
          : `import ${coreSource};`;
        coreImported = true;
      } else {
        const parts = specifiers.map((specifier) =>
          `${id}$${nameOf(specifier.local)} as ${nameOf(specifier.exported)}`
        );
        replacement = `export { ${parts.join(", ")} } from ${coreSource};`;
      }
      text += code.slice(at, statement.start) + replacement;
      at = statement.end;
    }
    if (at > 0) out.set(path, text + code.slice(at));
  }
  return out;
}
