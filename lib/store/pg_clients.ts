/**
 * The client connections of one open PostgreSQL queue, used so that a
 * connection the server closed is never written to again.
 *
 * Why this exists: the `postgres` package (3.4.10) keeps using a connection
 * object after its socket closed. A transaction whose connection is
 * terminated (a server restart, `pg_terminate_backend`, a network cut) still
 * sends its ROLLBACK, and the client writes it to the closed socket from a
 * timer, where the `TypeError` cannot be caught: it ended the Web Worker
 * (upstream: porsager/postgres#1154, #1208). A write deferred at the moment
 * a socket closes is also left behind and sent ahead of the next connection's
 * start-up message, and a query sent between a socket's error and its close
 * is never answered (measured: a ROLLBACK waited for ever). So:
 * - transactions run on connections of their own (a client of one
 *   connection each), with BEGIN, COMMIT and ROLLBACK sent here rather than
 *   by the client's `begin`; once such a connection closes, the transaction
 *   fails at once, sends nothing more, and the client is ended, never reused;
 * - single statements and reads run on a pool; a pool one of whose
 *   connections closed is replaced by a fresh one (the old one ends once
 *   its queries under way are answered), and a query of it still unanswered
 *   a few seconds later fails as lost.
 *
 * A transaction's body may send several statements before awaiting them,
 * but only reads: when the connection closes, a statement the client had
 * queued behind another is sent on its next connection, outside the
 * transaction.
 *
 * @module
 */

import type { ConnectionEvents, ConnectOptions, Sql } from "./pg_connection.ts";

/** Opens a client (a pool of `options.max` connections) to the queue's server. */
export type Connect = (options: ConnectOptions, events: ConnectionEvents) => Sql;

/** A transaction's query function: the tagged template of its one connection, and a savepoint. */
export type Tx = Sql & {
  /** Runs `body` inside a savepoint: undone alone when it throws. */
  savepoint<T>(body: (tx: Tx) => Promise<T>): Promise<T>;
};

/** A client of one connection that runs one transaction at a time. */
interface Lane {
  sql: Sql;
  /** Its connection closed: it must not be written to again. */
  closed: boolean;
  /** The queries of the transaction under way, as sent to the client (statements and fragments). */
  queries: Set<PendingQuery>;
  /** Rejects when the connection closes. */
  lost: Promise<never>;
  /** The last transaction ended cleanly (committed or rolled back): the lane can take another. */
  clean: boolean;
}

/** A query as the client builds it: a promise, run when first awaited, that can be cancelled. */
type PendingQuery = Promise<unknown> & {
  executed?: boolean;
  state?: unknown;
  cancel?: () => unknown;
};

/** How long a retired pool has to finish what it was sent, in seconds. */
const RETIRE_TIMEOUT_S = 5;

/** How long after its pool's connection closed a query still unanswered is failed, in ms. */
const LOST_AFTER_MS = (RETIRE_TIMEOUT_S + 1) * 1000;

/** The error of a query whose connection closed before it was answered. */
function connectionClosed(): Error {
  return Object.assign(new Error("the connection closed before the answer came"), {
    code: "CONNECTION_CLOSED",
  });
}

/** The error of a transaction asked for once the connections were ended. */
function connectionEnded(): Error {
  return Object.assign(new Error("the connections were closed"), { code: "CONNECTION_ENDED" });
}

/** A promise that rejects with {@linkcode connectionClosed} when `lose` is called, and its caller. */
export function losable(): { lost: Promise<never>; lose: () => void } {
  let lose = () => {};
  const lost = new Promise<never>((_, reject) => lose = () => reject(connectionClosed()));
  // Only a query under way awaits it; an idle connection closing is no error.
  lost.catch(() => {});
  return { lost, lose };
}

/** The pool for statements and reads, and the lanes for transactions, of one queue. */
export class PgClients {
  readonly #connect: Connect;
  readonly #options: ConnectOptions;
  readonly #laneLimit: number;
  #pool: Sql;
  #poolLost: Promise<never>;
  readonly #idle: Lane[] = [];
  readonly #busy = new Set<Lane>();
  readonly #waiting: (() => void)[] = [];
  readonly #retiring = new Set<Promise<void>>();
  #ended = false;

  /**
   * Connects lazily: the first query opens the first connection. `options.max`
   * is shared between the pool and the transaction lanes.
   */
  constructor(connect: Connect, options: ConnectOptions = {}) {
    this.#connect = connect;
    const max = options.max ?? 4;
    this.#laneLimit = Math.max(1, Math.ceil(max / 2));
    this.#options = { ...options, max: Math.max(1, max - this.#laneLimit) };
    [this.#pool, this.#poolLost] = this.#newPool();
  }

  /**
   * Runs `query` on the pool as it is now; fails as lost when the pool's
   * connection closed and no answer came within a few seconds.
   */
  onPool<T>(query: (sql: Sql) => Promise<T>): Promise<T> {
    return Promise.race([query(this.#pool), this.#poolLost]);
  }

  /**
   * Runs `body` in one transaction (READ COMMITTED) on a connection of its
   * own: committed when it returns, rolled back when it throws. When the
   * connection closes meanwhile, the transaction fails at once with the
   * client's `CONNECTION_CLOSED` error and nothing more is sent (the server
   * rolls it back).
   */
  async transaction<T>(body: (tx: Tx) => Promise<T>): Promise<T> {
    const lane = await this.#takeLane();
    try {
      return await Promise.race([runOn(lane, body), lane.lost]);
    } finally {
      this.#giveLane(lane);
    }
  }

  /** Ends every connection, waiting up to `timeoutS` for queries under way. */
  async end(timeoutS: number): Promise<void> {
    this.#ended = true;
    for (const wake of this.#waiting.splice(0)) wake();
    const lanes = [...this.#idle.splice(0), ...this.#busy];
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      // Retired clients end within their own, longer, time: no need to wait for them here.
      Promise.all([
        this.#pool.end({ timeout: timeoutS }),
        ...lanes.map((lane) => lane.sql.end({ timeout: timeoutS })),
        ...this.#retiring,
      ]),
      new Promise((resolve) => timer = setTimeout(resolve, timeoutS * 1000)),
    ]);
    clearTimeout(timer);
  }

  #newPool(): [Sql, Promise<never>] {
    const { lost, lose } = losable();
    const pool: Sql = this.#connect(this.#options, {
      onclose: () => {
        if (this.#pool !== pool || this.#ended) return;
        [this.#pool, this.#poolLost] = this.#newPool();
        this.#retire(pool, RETIRE_TIMEOUT_S);
        Deno.unrefTimer(setTimeout(lose, LOST_AFTER_MS));
      },
    });
    return [pool, lost];
  }

  async #takeLane(): Promise<Lane> {
    while (this.#busy.size >= this.#laneLimit && !this.#ended) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    if (this.#ended) throw connectionEnded();
    let lane = this.#idle.pop();
    while (lane?.closed) {
      this.#retire(lane.sql, 0);
      lane = this.#idle.pop();
    }
    lane ??= this.#newLane();
    this.#busy.add(lane);
    return lane;
  }

  #newLane(): Lane {
    const { lost, lose } = losable();
    const lane: Lane = {
      sql: undefined as unknown as Sql,
      closed: false,
      queries: new Set(),
      lost,
      clean: true,
    };
    lane.sql = this.#connect({ ...this.#options, max: 1 }, {
      onclose: () => {
        lane.closed = true;
        // A statement the client queued behind another but never sent would go out on its
        // next connection, outside the transaction, and keep that connection open: withdraw it.
        for (const query of lane.queries) {
          if (query.executed && !query.state) query.cancel?.();
        }
        lose();
      },
    });
    return lane;
  }

  #giveLane(lane: Lane): void {
    this.#busy.delete(lane);
    lane.queries.clear();
    if (lane.clean && !lane.closed && !this.#ended) this.#idle.push(lane);
    // A transaction that did not end cleanly left nothing worth waiting for on its connection.
    else this.#retire(lane.sql, 0);
    this.#waiting.shift()?.();
  }

  #retire(sql: Sql, timeoutS: number): void {
    const ending = sql.end({ timeout: timeoutS }).catch(() => {});
    this.#retiring.add(ending);
    ending.finally(() => this.#retiring.delete(ending));
  }
}

/** BEGIN, `body`, then COMMIT or ROLLBACK on `lane`; marks the lane clean only once either is done. */
async function runOn<T>(lane: Lane, body: (tx: Tx) => Promise<T>): Promise<T> {
  lane.clean = false;
  const tx = guarded(lane);
  await tx`BEGIN`;
  let result: T;
  try {
    result = await body(tx);
  } catch (error) {
    // A server error leaves the session usable once rolled back; a lost connection, nothing to send.
    if (!lane.closed) await tx`ROLLBACK`.then(() => lane.clean = true, () => {});
    throw error;
  }
  await tx`COMMIT`;
  lane.clean = true;
  return result;
}

/**
 * `lane`'s query function that refuses to send anything once its connection
 * closed. The check is made as the query is built; the client sends it a
 * microtask later, before any socket event can be handled.
 */
function guarded(lane: Lane): Tx {
  const check = () => {
    if (lane.closed) throw connectionClosed();
  };
  let savepoints = 0;
  const tx = new Proxy(lane.sql, {
    apply(target, self, args) {
      check();
      const query = Reflect.apply(target, self, args) as PendingQuery;
      lane.queries.add(query);
      return query;
    },
    get(target, key, receiver) {
      if (key === "savepoint") return savepoint;
      if (key === "unsafe") {
        return (...args: Parameters<Sql["unsafe"]>) => (check(), target.unsafe(...args));
      }
      return Reflect.get(target, key, receiver);
    },
  }) as Tx;
  async function savepoint<T>(body: (tx: Tx) => Promise<T>): Promise<T> {
    const name = `queuectl_${++savepoints}`;
    await tx.unsafe(`SAVEPOINT ${name}`);
    try {
      const result = await body(tx);
      await tx.unsafe(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (error) {
      if (!lane.closed) await tx.unsafe(`ROLLBACK TO SAVEPOINT ${name}`);
      throw error;
    }
  }
  return tx;
}
