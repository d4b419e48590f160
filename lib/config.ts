/**
 * Queue-wide settings kept in the database, so that every worker and every
 * machine sharing the queue sees the same values.
 *
 * @module
 */

import { formatDuration, parseDuration } from "./duration.ts";
import { UsageError } from "./errors.ts";
import { parseCount } from "./numbers.ts";

/** The settings every part of queuectl reads, decoded. */
export interface QueueConfig {
  /** Re-runs after the first run for jobs enqueued without their own value. @default 3 */
  maxRetries: number;
  /** A failed run number n waits `backoffBase ^ n` seconds. @default 2 */
  backoffBase: number;
  /** The longest single backoff delay, in ms. @default 3_600_000 (1h) */
  backoffMaxMs: number;
  /** The timeout given to jobs enqueued without their own, in ms; null for none. @default null */
  jobTimeoutMs: number | null;
  /** Completed and dead jobs are deleted this long after they finished, in ms; null to keep them. @default null */
  retentionMs: number | null;
  /** A worker process silent for this long is taken for dead and its jobs recovered, in ms. @default 30_000 */
  leaseTimeoutMs: number;
}

/** The settings of a new database. */
export const DEFAULT_CONFIG: Readonly<QueueConfig> = {
  maxRetries: 3,
  backoffBase: 2,
  backoffMaxMs: 3_600_000,
  jobTimeoutMs: null,
  retentionMs: null,
  leaseTimeoutMs: 30_000,
};

interface KeyDefinition {
  field: keyof QueueConfig;
  /** The form of the value, for help text, e.g. `DUR|none`. */
  value: string;
  /** The key in `config list --json`: snake_case, `_ms` for a duration in milliseconds. */
  jsonKey: string;
  description: string;
  /** Turns user text into the stored value, or throws {@linkcode UsageError}. */
  parse(text: string): number | null;
  format(value: number | null): string;
}

/** The shortest lease: several heartbeats (one a second) must fit inside it. */
const MIN_LEASE_TIMEOUT_MS = 5_000;

/** A duration longer than 0, or `none` (null). */
function optionalDuration(key: string, text: string): number | null {
  if (text.trim() === "none") return null;
  const ms = parseDuration(text, key);
  if (ms === 0) throw new UsageError(`${key}: must be longer than 0, or 'none'`);
  return ms;
}

const KEYS: Record<string, KeyDefinition> = {
  "max-retries": {
    field: "maxRetries",
    value: "N",
    jsonKey: "max_retries",
    description: "re-runs after the first run, for jobs enqueued from now on",
    parse: (text) => parseCount(text, "max-retries"),
    format: String,
  },
  "backoff-base": {
    field: "backoffBase",
    value: "NUMBER",
    jsonKey: "backoff_base",
    description: "a failed run number n waits backoff-base^n seconds (at least 1)",
    parse(text) {
      const value = Number(text.trim());
      if (!/^\d+(\.\d+)?$/.test(text.trim()) || value < 1) {
        throw new UsageError(`backoff-base: '${text}' is not a number of at least 1`);
      }
      if (!Number.isFinite(value)) throw new UsageError(`backoff-base: '${text}' is too large`);
      return value;
    },
    format: String,
  },
  "backoff-max": {
    field: "backoffMaxMs",
    value: "DUR",
    jsonKey: "backoff_max_ms",
    description: "the longest wait between two runs of a job",
    parse(text) {
      const ms = parseDuration(text, "backoff-max");
      if (ms === 0) throw new UsageError("backoff-max: must be longer than 0");
      return ms;
    },
    format: (value) => formatDuration(value ?? 0),
  },
  "job-timeout": {
    field: "jobTimeoutMs",
    value: "DUR|none",
    jsonKey: "job_timeout_ms",
    description: "timeout for jobs enqueued from now on without their own ('none' for no limit)",
    parse: (text) => optionalDuration("job-timeout", text),
    format: (value) => value === null ? "none" : formatDuration(value),
  },
  retention: {
    field: "retentionMs",
    value: "DUR|none",
    jsonKey: "retention_ms",
    description:
      "workers delete completed and dead jobs this long after they finished ('none': keep)",
    parse: (text) => optionalDuration("retention", text),
    format: (value) => value === null ? "none" : formatDuration(value),
  },
  "lease-timeout": {
    field: "leaseTimeoutMs",
    value: "DUR",
    jsonKey: "lease_timeout_ms",
    description:
      "a worker on another host silent this long is taken for dead and its jobs recovered",
    parse(text) {
      const ms = parseDuration(text, "lease-timeout");
      if (ms < MIN_LEASE_TIMEOUT_MS) {
        throw new UsageError(
          `lease-timeout: must be at least ${
            formatDuration(MIN_LEASE_TIMEOUT_MS)
          } (workers heartbeat every second)`,
        );
      }
      return ms;
    },
    format: (value) => formatDuration(value ?? 0),
  },
};

/** The names of every setting, as `config get/set` print and take them. */
export const CONFIG_KEYS: readonly string[] = Object.keys(KEYS);

/**
 * The name of a setting as queuectl spells it: `_` may stand for `-`, so
 * `max_retries` (the spelling of the JSON job spec) is `max-retries`.
 *
 * @throws {UsageError} for a name that is no setting
 */
export function configKey(name: string): string {
  const key = name.replaceAll("_", "-");
  // hasOwn: names such as "toString" are not keys, whatever Object.prototype says.
  if (!Object.hasOwn(KEYS, key)) {
    throw new UsageError(
      `unknown config key '${name}' (known: ${CONFIG_KEYS.join(", ")}; '_' may stand for '-')`,
    );
  }
  return key;
}

function definition(name: string): KeyDefinition {
  return KEYS[configKey(name)];
}

/** The one-line description of a setting. */
export function describeConfigKey(key: string): string {
  return definition(key).description;
}

/**
 * Validates user text for a setting and returns the value to store.
 *
 * @throws {UsageError} for an unknown key or a bad value
 */
export function parseConfigValue(key: string, text: string): number | null {
  return definition(key).parse(text);
}

/** Formats a setting of `config` as `config get` prints it. */
export function formatConfigValue(key: string, config: QueueConfig): string {
  const def = definition(key);
  return def.format(config[def.field]);
}

/** The database field a setting is stored under. */
export function configField(key: string): keyof QueueConfig {
  return definition(key).field;
}

/** One setting as `config set --help` lists it. */
export interface ConfigKeyHelp {
  key: string;
  /** The form of the value, e.g. `N` or `DUR|none`. */
  value: string;
  /** The value of a new database, as `config get` prints it. */
  default: string;
  description: string;
}

/** Every setting with the form of its value and its default, in `config list` order. */
export function describeConfigKeys(): ConfigKeyHelp[] {
  return CONFIG_KEYS.map((key) => ({
    key,
    value: KEYS[key].value,
    default: formatConfigValue(key, DEFAULT_CONFIG),
    description: KEYS[key].description,
  }));
}

/**
 * Every setting as `config list --json` prints it: snake_case keys, numbers
 * as numbers, durations in milliseconds under a `_ms` key, null for `none`.
 */
export function configToJson(config: QueueConfig): Record<string, number | null> {
  return Object.fromEntries(Object.values(KEYS).map((def) => [def.jsonKey, config[def.field]]));
}
