/**
 * Queue limits (lib/queue_limits.ts) on SQLite: changing them. The claim
 * obeys them (lib/store/sqlite_claim.ts).
 *
 * @module
 */

import type { QueueLimits, QueueLimitsChange } from "../queue_limits.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { rowToLimits } from "./rows.ts";

/** Changes a queue's limits, creating the queue if need be; returns its limits now. */
export function setQueueLimits(
  conn: SqliteConnection,
  name: string,
  change: QueueLimitsChange,
): Promise<QueueLimits> {
  return conn.write(() => {
    conn.sql("INSERT INTO queues (name) VALUES (?) ON CONFLICT (name) DO NOTHING").run(name);
    if (change.concurrency !== undefined) {
      conn.sql("UPDATE queues SET concurrency = ? WHERE name = ?").run(change.concurrency, name);
    }
    if (change.rate !== undefined) {
      const starts = change.rate?.starts ?? null;
      // A ring of another size starts afresh (lib/queue_limits.ts).
      const before = conn.sql("SELECT rate_limit FROM queues WHERE name = ?").get(name) as Row;
      if (before.rate_limit !== starts) {
        conn.sql("DELETE FROM queue_starts WHERE queue = ?").run(name);
        conn.sql("UPDATE queues SET rate_starts = 0 WHERE name = ?").run(name);
      }
      conn.sql("UPDATE queues SET rate_limit = ?, rate_period_ms = ? WHERE name = ?")
        .run(starts, change.rate?.periodMs ?? null, name);
    }
    return rowToLimits(conn.sql("SELECT * FROM queues WHERE name = ?").get(name) as Row);
  });
}
