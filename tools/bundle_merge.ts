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
 * top-level names in its own scope and returns its exports, each bound in
 * core.js as `__fold_<chunk>$<name>` and exported under that name; every
 * import of such a chunk, in the roots and in every other file, becomes an
 * import of that name from core.js. Preconditions, checked (the build fails
 * otherwise rather than change what the code does): no chunk of core.js
 * awaits at its top level, none exports a binding it reassigns (the value
 * bound is a copy, not a live binding), none is imported as a namespace or
 * re-exported whole, export names are identifiers, and no file uses the
 * `__fold_` prefix of the names this adds.
 *
 * @module
 */

import { fileURLToPath, pathToFileURL } from "node:url";
import { childrenOf, type Node, parseModule } from "./syntax.ts";

interface Named extends Node {
  name: string;
}

interface Literal extends Node {
  value: string;
}

/** The file that the chunks of the roots are folded into, at the bundle's root. */
export const CORE_FILE = "core.js";

/** The prefix of every name this module adds to the code. */
const PREFIX = "__fold_";

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function isRelative(source: string): boolean {
  return source.startsWith("./") || source.startsWith("../");
}

/** The absolute path that `source`, imported by the file at `from`, names. */
function resolve(from: string, source: string): string {
  return fileURLToPath(new URL(source, pathToFileURL(from)));
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
  return childrenOf(node).some(awaitsAtTopLevel);
}

/** The names a pattern (`x`, `[x, y]`, `{ x, y: [z] }`, `x = 1`, `...x`) binds or assigns. */
function patternNames(node: Node | null, into: Set<string>): void {
  if (node === null) return;
  if (node.type === "Identifier") into.add((node as Named).name);
  else if (node.type === "ArrayPattern") {
    for (const element of node.elements as (Node | null)[]) patternNames(element, into);
  } else if (node.type === "ObjectPattern") {
    for (const property of node.properties as Node[]) {
      patternNames((property.type === "RestElement" ? property : property.value) as Node, into);
    }
  } else if (node.type === "RestElement") patternNames(node.argument as Node, into);
  else if (node.type === "AssignmentPattern") patternNames(node.left as Node, into);
}

/**
 * The names assigned anywhere in `node` (`x = …`, `[x] = …`, `x++`,
 * `for (x of …)`), however deep, shadowed or not: the check errs on the
 * side of refusing.
 */
function assignedNames(node: Node, into = new Set<string>()): Set<string> {
  if (node.type === "AssignmentExpression") patternNames(node.left as Node, into);
  if (node.type === "UpdateExpression") patternNames(node.argument as Node, into);
  if (node.type === "ForOfStatement" || node.type === "ForInStatement") {
    const left = node.left as Node;
    if (left.type !== "VariableDeclaration") patternNames(left, into);
  }
  for (const child of childrenOf(node)) assignedNames(child, into);
  return into;
}

/** The name core.js gives the chunk at `path` (its file name without `.js`). */
function chunkId(path: string): string {
  return PREFIX + path.slice(path.lastIndexOf("/") + 1, -3).replace(/[^A-Za-z0-9_$]/g, "_");
}

/** The name core.js binds and exports for the export `name` of the chunk `id`. */
function exportId(id: string, name: string, path: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`${path}: export name ${name} is not an identifier`);
  return `${id}$${name}`;
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
  for (const [path, code] of files) {
    if (code.includes(PREFIX)) throw new Error(`${path} uses the prefix ${PREFIX} of folded names`);
    bodies.set(path, parseModule(code).body as Node[]);
  }
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
      const source = statement.source as Literal | null | undefined;
      const target = source && isRelative(source.value) ? resolve(path, source.value) : undefined;
      const whole = statement.type === "ExportAllDeclaration" ||
        (statement.type === "ImportDeclaration" &&
          (statement.specifiers as Node[]).some((s) => s.type === "ImportNamespaceSpecifier"));
      if (whole && target !== undefined && folded.has(target)) {
        throw new Error(`${path}: a folded chunk imported or exported whole (${statement.type})`);
      }
      if (folded.has(path) && statement.type === "ExportDefaultDeclaration") {
        throw new Error(`${path}: an export default declaration cannot be folded`);
      }
    }
  }

  const out = new Map(files);
  const parts: string[] = [];
  /** The namespace object of each package or built-in module that folded chunks import. */
  const externals = new Map<string, string>();
  const externalOf = (from: string) => {
    const object = externals.get(from) ?? `${PREFIX}external${externals.size}`;
    externals.set(from, object);
    return object;
  };
  const coreExports: string[] = [];
  for (const path of order) {
    const code = files.get(path)!;
    const body = bodies.get(path)!;
    const id = chunkId(path);
    const head: string[] = [];
    const exported: { name: string; value: string }[] = [];
    let text = "";
    let at = 0;
    for (const statement of body) {
      if (awaitsAtTopLevel(statement)) throw new Error(`${path} awaits at its top level`);
      const source = statement.source as Literal | null | undefined;
      const from = source?.value;
      const target = from !== undefined && isRelative(from) ? resolve(path, from) : undefined;
      if (statement.type === "ImportDeclaration") {
        for (const specifier of statement.specifiers as Node[]) {
          const local = (specifier.local as Named).name;
          if (specifier.type === "ImportNamespaceSpecifier") {
            head.push(`const ${local} = ${externalOf(from!)};`);
            continue;
          }
          const imported = specifier.type === "ImportDefaultSpecifier"
            ? "default"
            : nameOf(specifier.imported);
          head.push(
            target !== undefined
              ? `const ${local} = ${exportId(chunkId(target), imported, path)};`
              : `const { ${JSON.stringify(imported)}: ${local} } = ${externalOf(from!)};`,
          );
        }
      } else if (statement.type === "ExportNamedDeclaration") {
        if (statement.declaration) {
          throw new Error(`${path}: an exported declaration cannot be folded (esbuild emits none)`);
        }
        for (const specifier of statement.specifiers as Node[]) {
          const local = nameOf(specifier.local);
          const value = from === undefined
            ? local
            : target !== undefined
            ? exportId(chunkId(target), local, path)
            : `${externalOf(from)}[${JSON.stringify(local)}]`;
          exported.push({ name: nameOf(specifier.exported), value });
        }
      } else {
        continue;
      }
      text += code.slice(at, statement.start);
      at = statement.end;
    }
    text += code.slice(at);
    // What core.js binds is a copy: an exported binding must never change after the chunk ran.
    const reassigned = assignedNames({ type: "Program", start: 0, end: 0, body } as Node);
    for (const { value } of exported) {
      if (reassigned.has(value)) throw new Error(`${path} exports '${value}' and reassigns it`);
    }
    const names = exported.map(({ name }) => exportId(id, name, path));
    parts.push(
      `// ${relative(core, path)}\nconst ${id} = (() => {\n${head.join("\n")}\n${text}\n` +
        `return [${exported.map(({ value }) => value).join(", ")}];\n})();\n` +
        `const [${names.join(", ")}] = ${id};\n`,
    );
    coreExports.push(...names);
    out.delete(path);
  }
  out.set(
    core,
    [
      "// The chunks that start-up loads, folded into one file by tools/bundle_merge.ts.",
      ...[...externals].map(([from, object]) =>
        `import * as ${object} from ${JSON.stringify(from)};`
      ),
      ...parts,
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
          const imported = specifier.type === "ImportDefaultSpecifier"
            ? "default"
            : nameOf(specifier.imported);
          return `${exportId(id, imported, path)} as ${(specifier.local as Named).name}`;
        });
        // core.js runs once, whatever the number of imports naming it.
        replacement = parts.length > 0
          ? `import { ${parts.join(", ")} } from ${coreSource};`
          : coreImported
          ? ""
          : `import ${coreSource};`;
        coreImported = true;
      } else {
        const parts = specifiers.map((specifier) => {
          const name = nameOf(specifier.exported);
          const as = IDENTIFIER.test(name) ? name : JSON.stringify(name);
          return `${exportId(id, nameOf(specifier.local), path)} as ${as}`;
        });
        replacement = `export { ${parts.join(", ")} } from ${coreSource};`;
      }
      text += code.slice(at, statement.start) + replacement;
      at = statement.end;
    }
    if (at > 0) out.set(path, text + code.slice(at));
  }
  return out;
}

/**
 * A cycle of static imports among the bundle's files (`files` maps each
 * file's path to its code), as the list of paths around it; undefined when
 * there is none.
 */
export function findImportCycle(files: Map<string, string>): string[] | undefined {
  const imports = new Map<string, string[]>();
  for (const [path, code] of files) {
    imports.set(path, staticImports(path, parseModule(code).body as Node[]));
  }
  const done = new Set<string>();
  const onPath: string[] = [];
  function visit(path: string): string[] | undefined {
    if (done.has(path)) return undefined;
    const at = onPath.indexOf(path);
    if (at !== -1) return [...onPath.slice(at), path];
    onPath.push(path);
    for (const target of imports.get(path) ?? []) {
      const cycle = visit(target);
      if (cycle) return cycle;
    }
    onPath.pop();
    done.add(path);
    return undefined;
  }
  for (const path of imports.keys()) {
    const cycle = visit(path);
    if (cycle) return cycle;
  }
  return undefined;
}
