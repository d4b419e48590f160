/**
 * The PostgreSQL server's clock as one process sees it: this host's clock
 * plus an offset measured by a round trip (the server's time taken as that
 * of the round trip's middle), so that every host of a queue stamps and
 * compares job times on one clock however far its own has drifted. Between
 * measurements the host's clock runs on: an offset is measured again once a
 * minute, in the background, when the time is next asked for.
 *
 * @module
 */

import type { PgConnection } from "./pg_connection.ts";

/** How long an offset is trusted before it is measured again, in ms. */
const RESYNC_MS = 60_000;

/** The server's clock, read from this host's without a round trip. */
export class ServerClock {
  readonly #conn: PgConnection;
  readonly #local: () => number;
  #offset = 0;
  #measuredAt = -Infinity;
  #measuring = false;

  /** `local` is this host's clock: `Date.now` unless a test skews it. */
  constructor(conn: PgConnection, local: () => number = Date.now) {
    this.#conn = conn;
    this.#local = local;
  }

  /** Measures the offset now (one round trip). */
  async sync(): Promise<void> {
    const sent = this.#local();
    const [row] = await this.#conn.read((sql) =>
      sql`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`
    );
    const answered = this.#local();
    this.#offset = Math.round((row.ms as number) - (sent + answered) / 2);
    this.#measuredAt = answered;
  }

  /** The server's time now, in epoch ms, as best known. */
  now(): number {
    const local = this.#local();
    if (local - this.#measuredAt > RESYNC_MS && !this.#measuring) {
      this.#measuring = true;
      this.sync().catch(() => {}).finally(() => this.#measuring = false);
    }
    return local + this.#offset;
  }
}
