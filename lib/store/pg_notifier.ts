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
 * Waiters (`wait`, `logs --follow`, `top`) ask {@linkcode PgNotifier.changed}.
 * Every write to the queue's jobs, live output, queues or settings sends a
 * notice on the queue's change channel at commit (statement triggers, see
 * lib/store/pg_migrations.ts), so a change is known exactly, per queue, and
 * only once committed. The notifier listens on one connection of its own,
 * opened at the first call, and asks each time with a round trip on that
 * connection: the server delivers every notice committed before the query
 * ahead of the query's answer, so a commit that finished before the call is
 * never missed. When that connection drops, notices may have been lost: the
 * next call says "changed".
 *
 * @module
 */

import { losable } from "./pg_clients.ts";
import { connectPg, type PgConnection, type Sql } from "./pg_connection.ts";
import type { Announcement, NewsSubscription, Notifier } from "./store.ts";

/** News of the queue in PostgreSQL: LISTEN/NOTIFY, and the transaction counter. */
export class PgNotifier implements Notifier {
  readonly #conn: PgConnection;
  /** The connection that listens for changes, once {@linkcode changed} was first called. */
  #watcher: Sql | undefined;
  /** Rejects when the watcher's connection closes: a query sent as it closed is never answered. */
  #watcherLost: Promise<never> = new Promise(() => {});
  #listening = false;
  #changed = false;
  readonly #subscriptions = new Set<NewsSubscription>();

  constructor(conn: PgConnection) {
    this.#conn = conn;
  }

  /** Nothing to do: the write sent its notice in its own transaction. */
  announce(_what: Announcement): Promise<void> {
    return Promise.resolve();
  }

  async changed(): Promise<boolean> {
    if (this.#watcher === undefined) {
      const { lost, lose } = losable();
      const watcher = connectPg(this.#conn.settings, { max: 1, connectTimeoutS: 10 }, {
        onnotify: (channel: string) => {
          if (channel === this.#conn.changeChannel) this.#changed = true;
        },
        onclose: () => {
          // Never written to again (see lib/store/pg_clients.ts): the next call opens another.
          if (this.#watcher === watcher) this.#watcher = undefined;
          lose();
          watcher.end({ timeout: 1 }).catch(() => {});
        },
      });
      this.#watcher = watcher;
      this.#watcherLost = lost;
      this.#listening = false;
    }
    const watcher = this.#watcher;
    const ask = async () => {
      if (!this.#listening) {
        // The first call, or back after a drop: notices may have been missed.
        await watcher.unsafe(`LISTEN "${this.#conn.changeChannel}"`);
        this.#listening = true;
        this.#changed = true;
      } else {
        await watcher`SELECT 1`;
      }
    };
    await this.#conn.read(() => Promise.race([ask(), this.#watcherLost]));
    const changed = this.#changed;
    this.#changed = false;
    return changed;
  }

  async listen(onNews: (what: Announcement) => void): Promise<NewsSubscription> {
    let first = true;
    // A client of its own: the pool is replaced when a connection of it closes, and its
    // listener would go with it.
    const client = connectPg(this.#conn.settings, { max: 1, connectTimeoutS: 10 });
    const { unlisten } = await this.#conn.read(() =>
      client.listen(
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
      )
    ).catch(async (error) => {
      await client.end({ timeout: 1 }).catch(() => {});
      throw error;
    });
    const subscription: NewsSubscription = {
      close: async () => {
        this.#subscriptions.delete(subscription);
        await unlisten().catch(() => {});
        await client.end({ timeout: 1 }).catch(() => {});
      },
    };
    this.#subscriptions.add(subscription);
    return subscription;
  }

  /** Stops every subscription, and the watch for changes. */
  async close(): Promise<void> {
    for (const subscription of [...this.#subscriptions]) await subscription.close();
    await this.#watcher?.end({ timeout: 1 }).catch(() => {});
  }
}
