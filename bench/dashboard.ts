/**
 * The dashboard's live events fanned out: a `queuectl dashboard` process
 * with 50 clients on `GET /api/events`, and the time from an enqueue's
 * commit (a real `queuectl enqueue` process) to the last of them receiving
 * the change, against the same with one client. The watch asks the store
 * once a tick (200 ms), so each delay holds a wait of up to a tick (about
 * 100 ms on average): the ratio, not the absolute delay, tells what fan-out
 * costs.
 *
 * @module
 */

import {
  type BenchResult,
  cliOk,
  figure,
  initDb,
  LongProcess,
  MAIN_TS,
  median,
  percentile,
  progress,
  round,
  seededRandom,
  type Sizes,
  wallNow,
  withTempDir,
} from "./util.ts";

/** Clients of the fanned-out measurement. */
const CLIENTS = 50;
/** Enqueues timed per configuration. */
const EVENTS = 40;
/**
 * The pause between enqueues, ms: longer than a tick, so that each change is
 * an event of its own, plus a random part, so that enqueues fall anywhere in
 * the tick rather than always at the same point of it.
 */
const GAP_MS = 400;

/** One client of `/api/events`: the wall-clock times (epoch ms) at which it received `change` events. */
class EventClient {
  readonly received: number[] = [];
  readonly #controller = new AbortController();
  readonly done: Promise<void>;

  constructor(url: URL) {
    this.done = (async () => {
      const response = await fetch(new URL("api/events", url), { signal: this.#controller.signal });
      if (!response.ok || !response.body) throw new Error(`GET /api/events: ${response.status}`);
      const decoder = new TextDecoder();
      let text = "";
      try {
        for await (const chunk of response.body) {
          const at = wallNow();
          text += decoder.decode(chunk, { stream: true });
          let end;
          while ((end = text.indexOf("\n\n")) !== -1) {
            if (text.slice(0, end).startsWith("event: change")) this.received.push(at);
            text = text.slice(end + 2);
          }
        }
      } catch (error) {
        if (!this.#controller.signal.aborted) throw error;
      }
    })();
  }

  /**
   * Hangs up. Waits for the reading to end, but not long: an aborted read of
   * a streamed body was seen to stay pending here with many streams open.
   */
  async close(): Promise<void> {
    this.#controller.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.done.catch(() => {}),
      new Promise((resolve) => timer = setTimeout(resolve, 1_000)),
    ]);
    clearTimeout(timer);
  }
}

/** The address the dashboard printed, once it has. */
async function dashboardUrl(dashboard: LongProcess): Promise<URL> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    const printed = /open (http:\S+)/.exec(
      await Deno.readTextFile(dashboard.logPath).catch(() => ""),
    );
    if (printed) return new URL(printed[1]);
    if (!dashboard.running) throw new Error(`dashboard exited: ${await dashboard.logTail()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("the dashboard printed no address within 20 s");
}

/**
 * For each enqueue: the delay, ms, from its start to the last of `clients`
 * receiving its change, and the spread from the first client's receipt to
 * the last's.
 */
async function fanOut(
  db: string,
  dir: string,
  clients: number,
): Promise<{ delays: number[]; spreads: number[] }> {
  const dashboard = LongProcess.start(
    Deno.execPath(),
    ["run", "-A", MAIN_TS, "--db", db, "dashboard", "--port", "0"],
    dir,
    `${dir}/dashboard-${clients}.log`,
  );
  try {
    const url = await dashboardUrl(dashboard);
    const open = Array.from({ length: clients }, () => new EventClient(url));
    // Each stream sends the counts when it opens: wait until every client has them.
    const deadline = performance.now() + 20_000;
    while (open.some((client) => client.received.length === 0)) {
      if (performance.now() > deadline) throw new Error("the event streams did not open");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const random = seededRandom(clients);
    const delays: number[] = [];
    const spreads: number[] = [];
    for (let i = 0; i < EVENTS; i++) {
      await new Promise((resolve) => setTimeout(resolve, GAP_MS + random() * 200));
      const before = open.map((client) => client.received.length);
      const started = wallNow();
      await cliOk(db, ["enqueue", "true"], { cwd: dir });
      const wait = performance.now() + 10_000;
      while (open.some((client, k) => client.received.length === before[k])) {
        if (performance.now() > wait) throw new Error("a change did not reach every client");
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      const times = open.map((client, k) => client.received[before[k]]);
      delays.push(Math.max(...times) - started);
      spreads.push(Math.max(...times) - Math.min(...times));
    }
    await Promise.all(open.map((client) => client.close()));
    return { delays, spreads };
  } finally {
    await dashboard.stop();
  }
}

/** Runs the dashboard benchmark. */
export function runDashboard(_sizes: Sizes): Promise<BenchResult> {
  return withTempDir("dashboard", async (dir) => {
    const db = `${dir}/events.db`;
    await initDb(db, dir);
    progress(`dashboard: ${EVENTS} changes to 1 client`);
    const { delays: one } = await fanOut(db, dir, 1);
    progress(`dashboard: ${EVENTS} changes to ${CLIENTS} clients`);
    const { delays: many, spreads } = await fanOut(db, dir, CLIENTS);
    return {
      figures: [
        figure(
          "dashboard",
          `live events: an enqueue until all ${CLIENTS} clients of /api/events have it, p50`,
          median(many),
          "ms",
          { label: "same with 1 client", value: median(one), unit: "ms" },
          "lower",
          `a real enqueue process, then the watch's tick (up to 200 ms) and the fan-out; p90 ${
            percentile(many, 90).toFixed(0)
          } vs ${percentile(one, 90).toFixed(0)} ms; first to last client p50 ${
            median(spreads).toFixed(1)
          } ms, p90 ${percentile(spreads, 90).toFixed(1)} ms; ${EVENTS} changes each`,
        ),
      ],
      details: {
        clients: CLIENTS,
        oneMs: one.map((x) => round(x, 1)),
        manyMs: many.map((x) => round(x, 1)),
        spreadMs: spreads.map((x) => round(x, 2)),
      },
      problems: [],
    };
  });
}
