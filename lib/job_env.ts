/**
 * Job environments (`enqueue --env NAME=VALUE`, `--env-file F`, the JSON
 * spec's `env`): which names and values a job may set, and the dotenv form
 * of an env file.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** Names a job may set: POSIX-ish, a letter or `_`, then letters, digits and `_`. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Names the worker sets for every run, which a job may not set: its id, its
 * attempt, and the run's name that containment finds its processes by (a job
 * that set it would escape a kill).
 */
export const RESERVED_ENV_NAMES: readonly string[] = [
  "QUEUECTL_JOB_ID",
  "QUEUECTL_ATTEMPT",
  "QUEUECTL_RUN_ID",
];

/** Linux's limit on one `NAME=value` string of an environment, less its NUL, in bytes. */
const MAX_ENV_ENTRY_BYTES = 131_071;

/**
 * Checks one variable of a job's environment.
 *
 * @param where what to name in the message, e.g. `--env` or `env`
 * @throws {UsageError} for a name that is not valid or reserved, or a value that cannot be set
 */
export function checkEnvVariable(name: string, value: unknown, where: string): string {
  if (!ENV_NAME_PATTERN.test(name)) {
    throw new UsageError(
      `${where}: ${
        JSON.stringify(name)
      } is not a valid variable name (letters, digits and '_', not starting with a digit)`,
    );
  }
  if (RESERVED_ENV_NAMES.includes(name)) {
    throw new UsageError(
      `${where}: ${name} is set by the worker for every run; choose another name`,
    );
  }
  if (typeof value !== "string") {
    throw new UsageError(`${where}: the value of ${name} must be a string`);
  }
  if (value.includes("\0")) {
    throw new UsageError(`${where}: the value of ${name} contains a NUL byte`);
  }
  if (!value.isWellFormed()) {
    throw new UsageError(`${where}: the value of ${name} is not valid Unicode text`);
  }
  if (
    (name.length + 1 + value.length) * 3 > MAX_ENV_ENTRY_BYTES &&
    new TextEncoder().encode(`${name}=${value}`).length > MAX_ENV_ENTRY_BYTES
  ) {
    throw new UsageError(`${where}: ${name}=… is longer than ${MAX_ENV_ENTRY_BYTES} bytes`);
  }
  return value;
}

/** Reads the JSON spec's `env`: an object of strings. */
export function checkEnvObject(value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError('\'env\' must be an object of strings, such as {"LANG": "C"}');
  }
  const env: Record<string, string> = {};
  for (const [name, variable] of Object.entries(value)) {
    env[name] = checkEnvVariable(name, variable, "env");
  }
  return env;
}

/** Reads one `--env NAME=VALUE`; the value may be empty and may hold `=`. */
export function parseEnvAssignment(text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq === -1) throw new UsageError(`--env: expected NAME=VALUE, got ${JSON.stringify(text)}`);
  const name = text.slice(0, eq);
  return [name, checkEnvVariable(name, text.slice(eq + 1), "--env")];
}

/**
 * Reads an env file in dotenv form, one `NAME=VALUE` a line: blank lines and
 * lines starting with `#` are skipped; `export ` before the name is allowed;
 * blanks around the name and the value are dropped. A value in single quotes
 * is taken as written; in double quotes, `\n`, `\t`, `\"` and `\\` are
 * escapes; either may be followed by blanks and a `# comment`. An unquoted
 * value runs to the end of the line, `#` included. No variable is expanded
 * and no value spans lines.
 *
 * @param label what to name in messages, e.g. `--env-file vars.env`
 * @throws {UsageError} naming the first line that is not of this form
 */
export function parseEnvFile(text: string, label: string): Record<string, string> {
  const env: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const where = `${label} line ${i + 1}`;
    let line = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    line = line.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (/^export\s/.test(line)) line = line.slice(6).trimStart();
    const eq = line.indexOf("=");
    if (eq === -1) throw new UsageError(`${where}: expected NAME=VALUE`);
    const name = line.slice(0, eq).trimEnd();
    const value = envFileValue(line.slice(eq + 1).trimStart(), where);
    env[name] = checkEnvVariable(name, value, where);
  }
  return env;
}

const DOUBLE_QUOTED_ESCAPES: Record<string, string> = { n: "\n", t: "\t", '"': '"', "\\": "\\" };

function envFileValue(text: string, where: string): string {
  const quote = text[0];
  if (quote !== '"' && quote !== "'") return text.trimEnd();
  let value = "";
  let i = 1;
  for (; i < text.length && text[i] !== quote; i++) {
    if (quote === '"' && text[i] === "\\" && i + 1 < text.length) {
      const escaped = DOUBLE_QUOTED_ESCAPES[text[i + 1]];
      if (escaped !== undefined) {
        value += escaped;
        i++;
        continue;
      }
    }
    value += text[i];
  }
  if (i >= text.length) throw new UsageError(`${where}: the quoted value has no closing ${quote}`);
  const rest = text.slice(i + 1).trim();
  if (rest !== "" && !rest.startsWith("#")) {
    throw new UsageError(`${where}: unexpected text after the quoted value`);
  }
  return value;
}
