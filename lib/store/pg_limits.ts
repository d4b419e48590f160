/**
 * Queue limits (lib/queue_limits.ts) on PostgreSQL: changing them. The claim
 * obeys them (lib/store/pg_claim.ts).
 *
 * @module
 */

import type { QueueLimits, QueueLimitsChange } from "../queue_limits.ts";
import type { PgConnection } from "./pg_connection.ts";
import { rowToLimits } from "./rows.ts";

/**
 * Changes a queue's limits, creating the queue if need be; returns its
 * limits now. Tells idle workers: a raised limit may let them claim.
 */
export function setQueueLimits(
  conn: PgConnection,
  name: string,
  change: QueueLimitsChange,
): Promise<QueueLimits> {
  return conn.write(async (tx) => {
    await tx`INSERT INTO queues (name) VALUES (${name}) ON CONFLICT (name) DO NOTHING`;
    if (change.concurrency !== undefined) {
      await tx`UPDATE queues SET concurrency = ${change.concurrency} WHERE name = ${name}`;
    }
    if (change.rate !== undefined) {
      const starts = change.rate?.starts ?? null;
      // A ring of another size starts afresh (see lib/queue_limits.ts); the row is held from here.
      const [before] = await tx`SELECT rate_limit FROM queues WHERE name = ${name} FOR UPDATE`;
      if (before.rate_limit !== starts) {
        await tx`DELETE FROM queue_starts WHERE queue = ${name}`;
        await tx`UPDATE queues SET rate_starts = 0 WHERE name = ${name}`;
      }
      await tx`UPDATE queues SET rate_limit = ${starts},
        rate_period_ms = ${change.rate?.periodMs ?? null} WHERE name = ${name}`;
    }
    const [row] = await tx`SELECT * FROM queues WHERE name = ${name}`;
    await conn.notify(tx, "jobs");
    return rowToLimits(row);
  });
}
