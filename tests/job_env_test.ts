import assert from "node:assert/strict";
import { UsageError } from "../lib/errors.ts";
import { parseEnvAssignment, parseEnvFile } from "../lib/job_env.ts";

Deno.test("parseEnvAssignment() splits at the first '=' and checks the name", () => {
  assert.deepEqual(parseEnvAssignment("URL=http://x/?a=b"), ["URL", "http://x/?a=b"]);
  assert.deepEqual(parseEnvAssignment("EMPTY="), ["EMPTY", ""]);
  assert.throws(() => parseEnvAssignment("NOVALUE"), /--env: expected NAME=VALUE/);
  assert.throws(() => parseEnvAssignment("=x"), /"" is not a valid variable name/);
  assert.throws(() => parseEnvAssignment("QUEUECTL_RUN_ID=x"), UsageError);
});

Deno.test("parseEnvFile() reads the dotenv form: comments, export, quotes, escapes", () => {
  const text = [
    "# a comment",
    "",
    "  PLAIN = some value # not a comment  ",
    "export EXPORTED=yes",
    "SINGLE='$HOME \\n # kept' # dropped",
    'DOUBLE="tab\\there\\nnext \\"q\\" \\\\ \\x" # a comment',
    "EMPTY=",
    'QUOTED_EMPTY=""',
    "CRLF=dos\r",
    "PLAIN=later wins",
  ].join("\n");
  assert.deepEqual(parseEnvFile(text, "vars.env"), {
    PLAIN: "later wins",
    EXPORTED: "yes",
    SINGLE: "$HOME \\n # kept",
    DOUBLE: 'tab\there\nnext "q" \\ \\x',
    EMPTY: "",
    QUOTED_EMPTY: "",
    CRLF: "dos",
  });
});

Deno.test("parseEnvFile() names the first line that is not NAME=VALUE", () => {
  const refused = (text: string, message: RegExp) =>
    assert.throws(() => parseEnvFile(text, "--env-file v.env"), message);
  refused("A=1\nnot an assignment\n", /--env-file v\.env line 2: expected NAME=VALUE$/);
  refused("A=1\n\nB-C=2", /line 3: "B-C" is not a valid variable name/);
  refused('A="open', /line 1: the quoted value has no closing "/);
  refused("A='x' y", /line 1: unexpected text after the quoted value/);
  refused("QUEUECTL_JOB_ID=1", /line 1: QUEUECTL_JOB_ID is set by the worker/);
});
