import assert from "node:assert/strict";
import {
  CONFIG_KEYS,
  configField,
  configKey,
  configToJson,
  DEFAULT_CONFIG,
  describeConfigKey,
  formatConfigValue,
  parseConfigValue,
  type QueueConfig,
} from "../lib/config.ts";
import { UsageError } from "../lib/errors.ts";

Deno.test("CONFIG_KEYS names the six settings", () => {
  assert.deepEqual([...CONFIG_KEYS].sort(), [
    "backoff-base",
    "backoff-max",
    "job-timeout",
    "lease-timeout",
    "max-retries",
    "retention",
  ]);
});

Deno.test("configField() maps each key to its config field", () => {
  assert.equal(configField("max-retries"), "maxRetries");
  assert.equal(configField("backoff-base"), "backoffBase");
  assert.equal(configField("backoff-max"), "backoffMaxMs");
  assert.equal(configField("job-timeout"), "jobTimeoutMs");
});

Deno.test("describeConfigKey() gives a non-empty line for every key", () => {
  for (const key of CONFIG_KEYS) {
    const description = describeConfigKey(key);
    assert.ok(description.length > 0, key);
    assert.ok(!description.includes("\n"), key);
  }
});

Deno.test("the default config is 3 retries, base 2, a 1h cap and no timeout", () => {
  assert.deepEqual(
    { ...DEFAULT_CONFIG },
    {
      maxRetries: 3,
      backoffBase: 2,
      backoffMaxMs: 3_600_000,
      jobTimeoutMs: null,
      retentionMs: null,
      leaseTimeoutMs: 30_000,
    },
  );
});

Deno.test("parseConfigValue() reads max-retries as a whole number", () => {
  assert.equal(parseConfigValue("max-retries", "0"), 0);
  assert.equal(parseConfigValue("max-retries", "5"), 5);
  assert.equal(parseConfigValue("max-retries", " 7 "), 7);
});

Deno.test("parseConfigValue() refuses max-retries that are not whole numbers of 0 or more", () => {
  for (const text of ["-1", "1.5", "", "abc", "1e2", "99999999999999999999"]) {
    assert.throws(() => parseConfigValue("max-retries", text), UsageError, text);
  }
});

Deno.test("parseConfigValue() reads backoff-base of 1 or more, fractions included", () => {
  assert.equal(parseConfigValue("backoff-base", "1"), 1);
  assert.equal(parseConfigValue("backoff-base", "1.5"), 1.5);
  assert.equal(parseConfigValue("backoff-base", "2"), 2);
  assert.equal(parseConfigValue("backoff-base", "10"), 10);
});

Deno.test("parseConfigValue() refuses backoff-base below 1 or not a plain number", () => {
  for (const text of ["0.5", "0", "0.99", "-2", "", "abc", "1e1", "Infinity", "9".repeat(400)]) {
    assert.throws(() => parseConfigValue("backoff-base", text), UsageError, text);
  }
});

Deno.test("parseConfigValue() reads backoff-max as a duration", () => {
  assert.equal(parseConfigValue("backoff-max", "10m"), 600_000);
  assert.equal(parseConfigValue("backoff-max", "30"), 30_000);
  assert.equal(parseConfigValue("backoff-max", "1ms"), 1);
});

Deno.test("parseConfigValue() refuses a zero or malformed backoff-max", () => {
  for (const text of ["0", "0s", "0ms", "none", "-1s", "soon"]) {
    assert.throws(() => parseConfigValue("backoff-max", text), UsageError, text);
  }
});

Deno.test("parseConfigValue() reads job-timeout as none or a duration", () => {
  assert.equal(parseConfigValue("job-timeout", "none"), null);
  assert.equal(parseConfigValue("job-timeout", " none "), null);
  assert.equal(parseConfigValue("job-timeout", "30s"), 30_000);
  assert.equal(parseConfigValue("job-timeout", "2h"), 7_200_000);
});

Deno.test("parseConfigValue() refuses a zero or malformed job-timeout", () => {
  for (const text of ["0", "0s", "", "never", "-5m"]) {
    assert.throws(() => parseConfigValue("job-timeout", text), UsageError, text);
  }
});

Deno.test("parseConfigValue() refuses an unknown key", () => {
  assert.throws(() => parseConfigValue("timeout", "3s"), UsageError);
  assert.throws(() => parseConfigValue("max__retries", "3"), UsageError);
  assert.throws(() => parseConfigValue("max retries", "3"), UsageError);
  assert.throws(() => parseConfigValue("Max-Retries", "3"), UsageError);
  assert.throws(() => parseConfigValue("", "3"), UsageError);
});

Deno.test("configKey() takes '_' for '-', the spelling of JSON specs", () => {
  for (const key of CONFIG_KEYS) {
    assert.equal(configKey(key), key);
    assert.equal(configKey(key.replaceAll("-", "_")), key);
  }
  assert.equal(parseConfigValue("max_retries", "3"), 3);
  assert.equal(formatConfigValue("lease_timeout", DEFAULT_CONFIG), "30s");
  assert.equal(configField("backoff_max"), "backoffMaxMs");
  assert.throws(
    () => configKey("max_retry"),
    (error) => error instanceof UsageError && /'max_retry'.*max-retries/.test(error.message),
  );
});

Deno.test("configToJson() gives numbers, milliseconds under _ms keys, and null for none", () => {
  assert.deepEqual(configToJson(DEFAULT_CONFIG), {
    max_retries: 3,
    backoff_base: 2,
    backoff_max_ms: 3_600_000,
    job_timeout_ms: null,
    retention_ms: null,
    lease_timeout_ms: 30_000,
  });
  const json = configToJson({ ...DEFAULT_CONFIG, backoffBase: 1.5, retentionMs: 86_400_000 });
  assert.equal(json.backoff_base, 1.5);
  assert.equal(json.retention_ms, 86_400_000);
  assert.equal(Object.keys(json).length, CONFIG_KEYS.length, "one entry per setting");
});

Deno.test("parseConfigValue() quotes a backoff-base too large for a number as typed", () => {
  const text = "9".repeat(400);
  assert.throws(
    () => parseConfigValue("backoff-base", text),
    (error) =>
      error instanceof UsageError && error.message === `backoff-base: '${text}' is too large`,
  );
});

Deno.test("config keys inherited from Object.prototype are unknown keys", () => {
  for (const key of ["toString", "constructor", "hasOwnProperty", "__proto__"]) {
    assert.throws(() => parseConfigValue(key, "3"), UsageError, key);
    assert.throws(() => formatConfigValue(key, DEFAULT_CONFIG), UsageError, key);
    assert.throws(() => configField(key), UsageError, key);
  }
});

Deno.test("formatConfigValue() and configField() refuse an unknown key", () => {
  assert.throws(() => formatConfigValue("colour", DEFAULT_CONFIG), UsageError);
  assert.throws(() => configField("colour"), UsageError);
  assert.throws(() => describeConfigKey("colour"), UsageError);
});

Deno.test("formatConfigValue() prints the defaults as 3, 2, 1h and none", () => {
  assert.equal(formatConfigValue("max-retries", DEFAULT_CONFIG), "3");
  assert.equal(formatConfigValue("backoff-base", DEFAULT_CONFIG), "2");
  assert.equal(formatConfigValue("backoff-max", DEFAULT_CONFIG), "1h");
  assert.equal(formatConfigValue("job-timeout", DEFAULT_CONFIG), "none");
  assert.equal(formatConfigValue("retention", DEFAULT_CONFIG), "none");
});

Deno.test("formatConfigValue() prints set values", () => {
  const config: QueueConfig = {
    maxRetries: 0,
    backoffBase: 1.5,
    backoffMaxMs: 90_000,
    jobTimeoutMs: 1_500,
    retentionMs: 7 * 86_400_000,
    leaseTimeoutMs: 45_000,
  };
  assert.equal(formatConfigValue("max-retries", config), "0");
  assert.equal(formatConfigValue("backoff-base", config), "1.5");
  assert.equal(formatConfigValue("backoff-max", config), "90s");
  assert.equal(formatConfigValue("job-timeout", config), "1.5s");
  assert.equal(formatConfigValue("retention", config), "7d");
  assert.equal(formatConfigValue("lease-timeout", config), "45s");
});

Deno.test("every setting parses back from what formatConfigValue() prints", () => {
  const configs: QueueConfig[] = [
    { ...DEFAULT_CONFIG },
    {
      maxRetries: 12,
      backoffBase: 1.25,
      backoffMaxMs: 61_001,
      jobTimeoutMs: 86_400_000,
      retentionMs: 90_000,
      leaseTimeoutMs: 3_600_000,
    },
  ];
  for (const config of configs) {
    for (const key of CONFIG_KEYS) {
      const parsed = parseConfigValue(key, formatConfigValue(key, config));
      assert.equal(parsed, config[configField(key)], key);
    }
  }
});

Deno.test("retention takes a duration or 'none', never 0", () => {
  assert.equal(parseConfigValue("retention", "7d"), 7 * 86_400_000);
  assert.equal(parseConfigValue("retention", "none"), null);
  assert.throws(() => parseConfigValue("retention", "0"), UsageError);
  assert.throws(() => parseConfigValue("retention", "forever"), UsageError);
});

Deno.test("lease-timeout takes a duration of at least 5s", () => {
  assert.equal(parseConfigValue("lease-timeout", "30s"), 30_000);
  assert.equal(parseConfigValue("lease-timeout", "5s"), 5_000);
  assert.throws(() => parseConfigValue("lease-timeout", "4s"), UsageError);
  assert.throws(() => parseConfigValue("lease-timeout", "none"), UsageError);
});
