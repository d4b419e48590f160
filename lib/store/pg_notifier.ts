/**
 * The {@linkcode Notifier} of the PostgreSQL backend. News of work travels
 * with the write that made it: enqueue, retry, revival, resume and kill
 * requests call `pg_notify` inside their own transaction
 * ({@linkcode PgConnection.notify}), so the news reaches every host's
 * listening workers at commit and never before; `announce` has nothing left
 * to do. Worker processes hear it through {@linkcode PgNotifier.listen}, on
 * a connection of its own that the client re-opens (and re-LISTENs) when it
 * drops; since news sent while it was down is lost, a reconnection counts
 * as news, and workers poll anyway (see lib/worker/job_runner.ts).
 *
 * Waiters (`wait`, `logs --follow`, `top`) ask {@linkcode PgNotifier.changed},
 * which compares the server's next transaction id with the one seen last:
 * any write anywhere on the server moves it, so it may say "changed" for
 * nothing, never "unchanged" after a commit.
 *
 * @module
 */

import type { PgConnection } from "./pg_connection.ts";
import type { Announcement, NewsSubscription, Notifier } from "./store.ts";

/** News of the queue in PostgreSQL: LISTEN/NOTIFY, and the transaction counter. */
export class PgNotifier implements Notifier {
  readonly #conn: PgConnection;
  #lastXmax: string | undefined;
  readonly #subscriptions = new Set<NewsSubscription>();

  constructor(conn: PgConnection) {
    this.#conn = conn;
  }

  /** Nothing to do: the write sent its notice in its own transaction. */
  announce(_what: Announcement): Promise<void> {
    return Promise.resolve();
  }

  async changed(): Promise<boolean> {
    const [row] = await this.#conn.read((sql) =>
      sql`SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax`
    );
    const changed = row.xmax !== this.#lastXmax;
    this.#lastXmax = row.xmax as string;
    return changed;
  }

  async listen(onNews: (what: Announcement) => void): Promise<NewsSubscription> {
    let first = true;
    const { unlisten } = await this.#conn.sql.listen(
      this.#conn.channel,
      (payload) => onNews(payload === "kill" ? "kill" : "jobs"),
      () => {
        // Back after a drop: what was announced meanwhile is lost, so look now.
        if (!first) {
          onNews("jobs");
          onNews("kill");
        }
        first = false;
      },
    );
    const subscription: NewsSubscription = {
      close: async () => {
        this.#subscriptions.delete(subscription);
        await unlisten().catch(() => {});
      },
    };
    this.#subscriptions.add(subscription);
    return subscription;
  }

  /** Stops every subscription. */
  async close(): Promise<void> {
    for (const subscription of [...this.#subscriptions]) await subscription.close();
  }
}
