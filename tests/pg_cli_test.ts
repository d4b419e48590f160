/**
 * The whole CLI on PostgreSQL: black-box CLI test files run again, as they
 * are, with every test's queue a fresh schema on the PostgreSQL test server
 * instead of a SQLite file (`QUEUECTL_TEST_STORE=postgres`, see
 * `tempQueue()` in tests/helpers.ts). Their tests reach the queue through
 * the CLI or through store-neutral helpers (`openQueueStore`, `ageJobs`,
 * `queueSnapshot`, `hasQueueOpen`, …); a test of what only a SQLite file has
 * (its bytes, a relative path, its tables through `node:sqlite`) is
 * registered with `sqliteOnlyTest` and ignored here.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PG_IGNORE } from "./pg_helpers.ts";

/** CLI and worker test files that hold for any store. */
const FILES = [
  "cli_enqueue_test.ts",
  "cli_after_test.ts",
  "cli_purge_test.ts",
  "cli_dlq_config_test.ts",
  "cli_stats_test.ts",
  "cli_follow_test.ts",
  "worker_run_test.ts",
  "worker_retry_test.ts",
  "worker_concurrency_test.ts",
  "cli_control_test.ts",
  "cli_wait_test.ts",
  "cli_top_test.ts",
  "cli_query_test.ts",
  "cli_errors_test.ts",
  "cli_output_test.ts",
  "cli_migrate_test.ts",
  "worker_shutdown_test.ts",
  "worker_recovery_test.ts",
  "worker_detach_test.ts",
  "hostile_input_test.ts",
];

Deno.test({
  name: "postgres cli: the store-independent CLI test files pass with every queue on PostgreSQL",
  ignore: PG_IGNORE,
  fn: async () => {
    const dir = new URL(".", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--parallel", ...FILES],
      cwd: dir,
      env: { QUEUECTL_TEST_STORE: "postgres", NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    const summary = text.match(/^(ok|FAILED) \| (\d+) passed.*$/m)?.[0] ?? "(no summary)";
    assert.ok(output.success, `${summary}\n${text.slice(-4000)}`);
    console.log(`  on PostgreSQL: ${summary}`);
  },
});
