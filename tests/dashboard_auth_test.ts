/**
 * `queuectl dashboard`: its options, its auth (token, cookie, loopback),
 * the CSRF and read-only checks on actions, and its stop on Ctrl+C or
 * SIGTERM with a client connected. A real CLI process on a free loopback
 * port, real HTTP, on SQLite and PostgreSQL (lib/cli/commands/dashboard.ts,
 * lib/dashboard/server.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { assertRefused, cli, cliOk, enqueue, queueExists, showJob, within } from "./helpers.ts";
import { call, post, startDashboard, storeTest, withDashboard } from "./dashboard_helpers.ts";

const TOKEN = "s3cret-Token_0123456789";

storeTest(
  "dashboard: bad options and a non-loopback address without a token are refused (exit 2, one line), before the queue is touched",
  async (db, dir) => {
    await Deno.writeTextFile(`${dir}/empty-token`, "\n");
    const refusals = [
      ["--host", "0.0.0.0"],
      ["--host", "192.0.2.1", "--read-only"],
      ["--port", "70000"],
      ["--port", "http"],
      ["--port", "-1"],
      ["--token", ""],
      ["--token", "with space"],
      ["--token", "a", "--token-file", `${dir}/empty-token`],
      ["--token-file", `${dir}/missing`],
      ["--token-file", `${dir}/empty-token`],
      ["--host", ""],
      ["extra-word"],
    ];
    for (const args of refusals) {
      assertRefused(await cli(["dashboard", ...args], { db }), 2, `dashboard ${args.join(" ")}`);
    }
    assert.match(
      (await cli(["dashboard", "--host", "0.0.0.0"], { db })).stderr,
      /without a token/,
    );
    assert.equal(await queueExists(db), false, "a refused start created the queue");
  },
);

storeTest("dashboard: a port already taken is refused with one line and exit 1", async (db) => {
  await withDashboard(db, [], async (dash) => {
    const port = new URL(dash.origin).port;
    const second = await cli(["dashboard", "--port", port], { db });
    assertRefused(second, 1, "a second dashboard on the same port");
    assert.match(second.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*in use`));
    assert.equal((await call(dash.origin, "/api/status")).status, 200, "the first one stopped");
  });
});

storeTest(
  "dashboard: beyond loopback a token is required: without it 401, a wrong one 401, the right one 200",
  async (db, dir) => {
    await Deno.writeTextFile(`${dir}/token`, `${TOKEN}\n`);
    await withDashboard(db, ["--host", "0.0.0.0", "--token-file", `${dir}/token`], async (dash) => {
      assert.match(dash.printed, new RegExp(`\\?token=${TOKEN}$`), "the URL to open has the token");
      // 0.0.0.0 listens on every address, loopback included: reached here through 127.0.0.1.
      const origin = dash.origin.replace("0.0.0.0", "127.0.0.1");
      for (
        const [path, options] of [
          ["/api/status", {}],
          ["/api/status", { token: "wrong" }],
          ["/api/status", { token: TOKEN.slice(0, -1) }],
          ["/api/jobs", { token: `${TOKEN}x` }],
          ["/metrics", {}],
          ["/api/events", { token: "wrong" }],
          ["/", {}],
          ["/?token=wrong", {}],
        ] as const
      ) {
        const answer = await call(origin, path, options);
        assert.equal(answer.status, 401, `${path} with ${JSON.stringify(options)}`);
        assert.match(answer.headers.get("content-type") ?? "", /^application\/json/);
        assert.equal(typeof (answer.json as { error: string }).error, "string");
      }
      const refused = await post(origin, "/api/queues/default/pause", {}, { token: "wrong" });
      assert.equal(refused.status, 401);
      assert.equal((await call(origin, "/api/status", { token: TOKEN })).status, 200);
      assert.equal(JSON.parse(await cliOk(["status", "--json"], { db })).queues.length, 0);
    });
  },
);

storeTest(
  "dashboard: a visit to /?token=T sets an HttpOnly SameSite=Strict cookie and redirects to / without the token; the cookie then authenticates",
  async (db) => {
    const id = await enqueue(db, "true");
    await withDashboard(db, ["--token", TOKEN], async (dash) => {
      const visit = await call(dash.origin, `/?token=${TOKEN}`);
      assert.equal(visit.status, 303);
      assert.equal(visit.headers.get("location"), "/");
      const cookie = visit.headers.get("set-cookie") ?? "";
      assert.match(cookie, /; HttpOnly/);
      assert.match(cookie, /; SameSite=Strict/);
      assert.match(cookie, /; Path=\//);
      assert.ok(!cookie.includes(TOKEN), "the cookie holds the token itself");
      const pair = cookie.split(";")[0];
      const withCookie = { headers: { cookie: pair } };
      assert.equal((await call(dash.origin, "/", withCookie)).status, 200);
      const shown = await call(dash.origin, `/api/jobs/${id}`, withCookie);
      assert.equal(shown.status, 200);
      assert.equal((shown.json as { id: string }).id, id);
      const forged = pair.replace(/=(.)/, (_, c) => `=${c === "a" ? "b" : "a"}`);
      assert.equal(
        (await call(dash.origin, "/api/status", { headers: { cookie: forged } })).status,
        401,
      );
      // An action from the dashboard's own page: the cookie and its own Origin.
      const paused = await post(dash.origin, "/api/queues/default/pause", {}, {
        headers: { cookie: pair, origin: dash.origin },
      });
      assert.equal(paused.status, 200, paused.text);
    });
    assert.equal(JSON.parse(await cliOk(["status", "--json"], { db })).queues[0].paused, true);
  },
);

storeTest(
  "dashboard: a cross-site POST, or one without a JSON body, is refused (403, 415) and changes nothing",
  async (db) => {
    const id = await enqueue(db, "true");
    await withDashboard(db, ["--token", TOKEN], async (dash) => {
      const before = await showJob(db, id);
      const crossSite: Record<string, string>[] = [
        { origin: "http://evil.example" },
        { origin: "null" },
        { origin: dash.origin.replace("127.0.0.1", "localhost") },
        { "sec-fetch-site": "cross-site" },
      ];
      for (const headers of crossSite) {
        const answer = await post(dash.origin, `/api/jobs/${id}/delete`, {}, {
          token: TOKEN,
          headers,
        });
        assert.equal(answer.status, 403, JSON.stringify(headers));
        assert.match((answer.json as { error: string }).error, /cross-site/);
        const bulk = await post(dash.origin, "/api/bulk", { action: "delete" }, {
          token: TOKEN,
          headers,
        });
        assert.equal(bulk.status, 403, `bulk ${JSON.stringify(headers)}`);
      }
      const form = await call(dash.origin, `/api/jobs/${id}/delete`, {
        method: "POST",
        token: TOKEN,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "x=1",
      });
      assert.equal(form.status, 415);
      const paused = await call(dash.origin, "/api/queues/default/pause", {
        method: "POST",
        token: TOKEN,
        headers: { "content-type": "text/plain" },
        body: "{}",
      });
      assert.equal(paused.status, 415);
      assert.deepEqual(await showJob(db, id), before);
      assert.equal(JSON.parse(await cliOk(["status", "--json"], { db })).queues[0].paused, false);
      // The same request from its own origin goes through.
      const deleted = await post(dash.origin, `/api/jobs/${id}/delete`, {}, {
        token: TOKEN,
        headers: { origin: dash.origin, "sec-fetch-site": "same-origin" },
      });
      assert.equal(deleted.status, 200, deleted.text);
    });
    assert.equal((await cli(["show", id], { db })).code, 1, "the job was not deleted");
  },
);

storeTest(
  "dashboard --read-only: every action is refused (403) and nothing changes; reading works",
  async (db) => {
    const dead = await enqueue(db, '{"id":"d1","command":"exit 3","max_retries":0}');
    const status = async () => JSON.parse(await cliOk(["status", "--json"], { db }));
    await withDashboard(db, ["--read-only"], async (dash) => {
      assert.match(dash.printed, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      assert.match(dash.process.stdout(), /read-only/);
      const before = await status();
      const actions: [string, unknown][] = [
        ["/api/jobs", { command: "touch should-not-exist" }],
        [`/api/jobs/${dead}/retry`, {}],
        [`/api/jobs/${dead}/kill`, {}],
        [`/api/jobs/${dead}/delete`, {}],
        ["/api/queues/default/pause", {}],
        ["/api/queues/default/resume", {}],
        ["/api/bulk", { action: "delete" }],
        ["/api/bulk", { action: "retry", state: "dead" }],
      ];
      for (const [path, body] of actions) {
        const answer = await post(dash.origin, path, body);
        assert.equal(answer.status, 403, path);
        assert.match((answer.json as { error: string }).error, /read-only/);
      }
      assert.deepEqual(await status(), before);
      assert.equal((await call(dash.origin, "/api/status")).status, 200);
      assert.equal((await call(dash.origin, `/api/jobs/${dead}`)).status, 200);
      const counted = await call(dash.origin, "/api/bulk?action=delete&state=pending");
      assert.deepEqual(counted.json, { action: "delete", matching: 1, eligible: 1 });
    });
  },
);

storeTest(
  "dashboard without a token answers only requests to a loopback name (a DNS name rebound to 127.0.0.1 is refused)",
  async (db) => {
    await withDashboard(db, [], async (dash) => {
      const port = Number(new URL(dash.origin).port);
      const raw = async (host: string) => {
        const connection = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          await connection.write(new TextEncoder().encode(
            `GET /api/status HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
          ));
          return await new Response(connection.readable).text();
        } catch (error) {
          connection.close();
          throw error;
        }
      };
      assert.match(await raw(`evil.example:${port}`), /^HTTP\/1\.1 403 /);
      assert.match(await raw(`127.0.0.1:${port}`), /^HTTP\/1\.1 200 /);
      assert.match(await raw(`localhost:${port}`), /^HTTP\/1\.1 200 /);
    });
  },
);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  storeTest(
    `dashboard: ${signal} stops it (exit 0) with an event stream and a request connected`,
    async (db) => {
      const dash = await startDashboard(db, ["--token", TOKEN]);
      try {
        const response = await fetch(`${dash.origin}/api/events`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        assert.equal(response.status, 200);
        assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
        const reader = response.body!.getReader();
        assert.ok((await reader.read()).value, "the stream sent nothing");
        // A second client holding a keep-alive connection open.
        assert.equal((await call(dash.origin, "/api/status", { token: TOKEN })).status, 200);
        const started = Date.now();
        assert.equal(await dash.stop(signal, 15_000), 0, dash.process.stderr());
        assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
        // The stream ended with the server, rather than hanging.
        await within(
          (async () => {
            try {
              while (!(await reader.read()).done);
            } catch {
              // Cut rather than ended: gone all the same.
            }
          })(),
          5_000,
          "the event stream to end",
        );
        assert.equal(dash.process.stderr(), "");
      } finally {
        await dash.stop().catch(() => {});
      }
    },
  );
}
