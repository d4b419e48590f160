/**
 * tools/startup_profile.ts: V8's function log read into the functions that
 * ran, by file and end offset, for the files of the bundle only. The real
 * profile runs with every build of the bundle: tests/bundle_test.ts checks
 * that the functions of `enqueue`'s start-up come out marked.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseFunctionLog } from "../tools/startup_profile.ts";

Deno.test("startup profile: V8's log gives the functions compiled, per bundle file, its escapes undone", () => {
  const log = [
    "v8-version,15,0,245,2,-rusty,0",
    "script-details,3,ext:core/00_primordials.js,0,0,",
    "script-details,41,file:///b/main.js,0,0,",
    "script-details,42,file:///b/lib/cli/commands/enqueue%20x.js,0,0,",
    "script-details,43,file:///elsewhere/x.js,0,0,",
    "script-details,44,file:///b/a\\x2C b.js,0,0,",
    "function,interpreter,44,5,77,0.01,6003,comma",
    "function,parse-function,41,100,220,0.034,5805,leadingOptions",
    "function,interpreter,41,100,220,0.014,5881,leadingOptions",
    "function,first-execution,41,300,400,0,5900,notCompiledHere",
    "function,interpreter,42,10,99,0.01,6000,run",
    "function,interpreter,43,1,2,0.01,6001,foreign",
    "function,interpreter,3,1,2,0.01,6002,internal",
    "script,deserialize,41,1056",
    "",
  ].join("\n");
  const run = parseFunctionLog(log, "/b/");
  assert.deepEqual([...run.keys()].sort(), [
    "/b/a, b.js",
    "/b/lib/cli/commands/enqueue x.js",
    "/b/main.js",
  ]);
  assert.deepEqual([...run.get("/b/a, b.js")!], [77]);
  assert.deepEqual([...run.get("/b/main.js")!], [220]);
  assert.deepEqual([...run.get("/b/lib/cli/commands/enqueue x.js")!], [99]);
  assert.throws(
    () => parseFunctionLog("function,interpreter,41,1,x,0.1,1,f\n", "/b/"),
    /unexpected line in V8's function log/,
  );
});
