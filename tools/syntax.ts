/**
 * The slice of acorn's syntax tree that the bundle's build steps read
 * (tools/bundle_merge.ts, tools/eager_compile.ts), parsed one way for both.
 *
 * @module
 */

import { parse } from "acorn";

/** An acorn syntax node, as much of it as the build steps read. */
export interface Node {
  type: string;
  start: number;
  end: number;
  [field: string]: unknown;
}

/**
 * The syntax tree of the ES module `code`; `preserveParens` keeps each pair
 * of parentheses as a node of its own. Throws a SyntaxError for code acorn
 * cannot parse.
 */
export function parseModule(code: string, preserveParens = false): Node {
  return parse(code, {
    ecmaVersion: "latest",
    sourceType: "module",
    preserveParens,
  }) as unknown as Node;
}

/** The syntax nodes directly under `node`. */
export function childrenOf(node: Node): Node[] {
  const children: Node[] = [];
  for (const [key, value] of Object.entries(node)) {
    if (key === "type") continue;
    for (const child of Array.isArray(value) ? value : [value]) {
      if (typeof child === "object" && child !== null && typeof child.type === "string") {
        children.push(child);
      }
    }
  }
  return children;
}
