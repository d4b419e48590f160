/**
 * The dashboard's live events (lib/dashboard/events.ts): a Server-Sent
 * Events stream over real HTTP, fed by the store's change notification,
 * on SQLite and on PostgreSQL. A change made by a real `queuectl enqueue`
 * process arrives within a second; bursts of commits are coalesced into a
 * handful of events; the stream ends, with its timers and listeners, when
 * its signal aborts (the test sanitizers check the leftovers).
 */

import assert from "node:assert/strict";
import { type ChangeEvent, eventStream } from "../lib/dashboard/events.ts";
import type { Store } from "../lib/store/store.ts";
import { onBothStores } from "./both_stores.ts";
import { cliOk, openQueueStore, waitFor } from "./helpers.ts";
import { newJob } from "./store_builders.ts";

/** An event as the client received it, with when it arrived. */
interface Received {
  event: string;
  data: ChangeEvent;
  at: number;
}

/** A client of one stream: the events so far, the comments seen, and whether it ended. */
interface Client {
  events: Received[];
  comments: string[];
  ended: Promise<void>;
  response: Response;
}

/** Reads an event stream's body as it comes, parsing events and comments. */
function readStream(response: Response): Client {
  const events: Received[] = [];
  const comments: string[] = [];
  const ended = (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body!) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) comments.push(line.slice(1).trim());
            else if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length > 0) {
            events.push({ event, data: JSON.parse(data.join("\n")), at: Date.now() });
          }
        }
      }
    } catch (error) {
      // The client's own abort ends its read with an AbortError.
      if (!(error instanceof DOMException && error.name === "AbortError")) throw error;
    }
  })();
  return { events, comments, ended, response };
}

/** A tiny server around `eventStream` on a random loopback port, and a way to stop it. */
function serveEvents(store: Store): { url: string; shutdown(): Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => eventStream(store, request.signal),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/api/events`,
    shutdown: () => server.shutdown(),
  };
}

/** Runs `fn` with the queue's store open and a server streaming its events. */
async function withEventServer(
  db: string,
  fn: (url: string, store: Store) => Promise<void>,
): Promise<void> {
  // The queue exists before the store opens, as under `queuectl dashboard`.
  await cliOk(["status"], { db });
  const store = await openQueueStore(db);
  const server = serveEvents(store);
  try {
    await fn(server.url, store);
  } finally {
    await server.shutdown();
    await store.close();
  }
}

/** Opens a stream, and waits for its first event (the counts when it opened). */
async function connect(url: string, abort: AbortController): Promise<Client> {
  const response = await fetch(url, { signal: abort.signal });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const client = readStream(response);
  await waitFor("the first event", () => client.events.length > 0, { timeoutMs: 10_000 });
  return client;
}

onBothStores(
  "a job enqueued by another process reaches every open stream within a second",
  ({ db }) =>
    withEventServer(db, async (url) => {
      const aborts = [new AbortController(), new AbortController()];
      const clients = await Promise.all(aborts.map((abort) => connect(url, abort)));
      try {
        for (const client of clients) {
          assert.equal(client.events[0].event, "change");
          assert.equal(client.events[0].data.jobs.pending, 0);
        }
        await cliOk(["enqueue", "true"], { db });
        const enqueued = Date.now();
        for (const client of clients) {
          const seen = await waitFor(
            "the new job's event",
            () => client.events.find((e) => e.data.jobs.pending === 1),
            { timeoutMs: 10_000, intervalMs: 10 },
          );
          // Both streams: one shared watch of the store must not hide the change from either.
          assert.ok(
            seen.at - enqueued < 1_000,
            `arrived ${seen.at - enqueued} ms after the enqueue`,
          );
        }
      } finally {
        for (const abort of aborts) abort.abort();
        for (const client of clients) await client.ended;
      }
    }),
);

onBothStores(
  "bursts of changes are coalesced into a handful of events",
  ({ db, dir }) =>
    withEventServer(db, async (url) => {
      const abort = new AbortController();
      const client = await connect(url, abort);
      try {
        // 2,000 jobs from a file, by a real `queuectl enqueue` process.
        const file = `${dir}/jobs.txt`;
        await Deno.writeTextFile(
          file,
          Array.from({ length: 2_000 }, (_, i) => `echo ${i}`).join("\n"),
        );
        const before = client.events.length;
        await cliOk(["enqueue", "--file", file], { db });
        await waitFor(
          "the burst's counts",
          () => client.events.some((e) => e.data.jobs.pending === 2_000),
          {
            timeoutMs: 10_000,
          },
        );
        const fromFile = client.events.length - before;
        assert.ok(fromFile <= 3, `${fromFile} events for one enqueue of 2,000 jobs`);

        // 300 commits, one job each, from another connection, letting the server's timers run
        // between them (a synchronous SQLite write would otherwise hold the event loop).
        const writer = await openQueueStore(db);
        const start = client.events.length;
        const began = Date.now();
        try {
          for (let i = 0; i < 300; i++) {
            await writer.enqueue([newJob(`burst-${i}`)], writer.now());
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
        } finally {
          await writer.close();
        }
        const elapsed = Date.now() - began;
        const last = await waitFor("the last commit's counts", () =>
          client.events.find((e) => e.data.jobs.pending === 2_300), {
          timeoutMs: 10_000,
        });
        const events = client.events.indexOf(last) + 1 - start;
        // At most one event a 200 ms tick, and a tick's grace on either side.
        const bound = Math.ceil(elapsed / 200) + 2;
        assert.ok(
          events <= bound && events < 30,
          `${events} events for 300 commits in ${elapsed} ms (at most ${bound})`,
        );
        // Every event carries every state's count.
        assert.deepEqual(Object.keys(last.data.jobs).sort(), [
          "blocked",
          "completed",
          "dead",
          "failed",
          "pending",
          "processing",
        ]);
        assert.ok(!Number.isNaN(Date.parse(last.data.at)));
      } finally {
        abort.abort();
        await client.ended;
      }
    }),
);

onBothStores(
  "the stream ends when its signal aborts, and sends heartbeats while it is quiet",
  async ({ db }) => {
    await cliOk(["status"], { db });
    const store = await openQueueStore(db);
    try {
      const abort = new AbortController();
      const response = eventStream(store, abort.signal, { heartbeatMs: 100 });
      assert.equal(response.headers.get("cache-control"), "no-cache");
      const client = readStream(response);
      await waitFor("a heartbeat", () => client.comments.includes("heartbeat"), {
        timeoutMs: 5_000,
      });
      assert.equal(client.events.length, 1, "no change, no event but the first");
      abort.abort();
      // The body ends by itself: no client abort here, only the server's signal.
      await client.ended;
      // A stream asked for with a signal already aborted ends at once.
      const late = readStream(eventStream(store, abort.signal));
      await late.ended;
      assert.equal(late.events.length, 0);
    } finally {
      await store.close();
    }
  },
);
