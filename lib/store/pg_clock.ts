/**
 * The PostgreSQL server's clock as one process sees it, so that every host
 * of a queue stamps and compares job times on one clock however far its own
 * is off. The server's time is read by a round trip (taken as the time of
 * the round trip's middle) and carried forward on this process's monotonic
 * clock, which no setting of the wall clock moves; it is read again once a
 * minute, in the background, when the time is next asked for.
 *
 * @module
 */

import type { PgConnection } from "./pg_connection.ts";

/** How long a reading is carried forward before the server is asked again, in ms. */
const RESYNC_MS = 60_000;

/** The server's clock, without a round trip each time. */
export class ServerClock {
  readonly #conn: PgConnection;
  /** The server's time at the reading, in epoch ms, and this process's monotonic time then. */
  #serverMs = Date.now();
  #readAt = performance.now();
  #lastTry = -Infinity;
  #reading = false;

  constructor(conn: PgConnection) {
    this.#conn = conn;
  }

  /** Reads the server's time now (one round trip). */
  async sync(): Promise<void> {
    const sent = performance.now();
    const [row] = await this.#conn.read((sql) =>
      sql`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`
    );
    const answered = performance.now();
    this.#serverMs = row.ms as number;
    this.#readAt = (sent + answered) / 2;
  }

  /** The server's time now, in epoch ms, as best known. */
  now(): number {
    const elapsed = performance.now();
    if (elapsed - Math.max(this.#readAt, this.#lastTry) > RESYNC_MS && !this.#reading) {
      // A failed reading is tried again a minute later, not at every call.
      this.#lastTry = elapsed;
      this.#reading = true;
      this.sync().catch(() => {}).finally(() => this.#reading = false);
    }
    return Math.round(this.#serverMs + (elapsed - this.#readAt));
  }
}
