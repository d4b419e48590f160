/**
 * The dashboard's pages (lib/dashboard/page.ts, page_script.ts,
 * page_style.ts) in a real browser: Debian's Chromium driven by
 * `playwright-core`, against a real `queuectl dashboard` process, on SQLite
 * and PostgreSQL. Each store's test launches the browser once and runs its
 * checks as steps: the overview's counts, a job enqueued from the CLI
 * appearing without a reload, retry from the DLQ seen through the CLI, a
 * filter plus bulk retry acting on exactly the matching jobs, job
 * text shown as text (no injected script runs), a retry done with the
 * keyboard alone, the job detail, and the pages at 360 px.
 *
 * Screenshots of each page, light and dark, go to tests/screenshots/ (not
 * committed) for a person to look at. Without /usr/bin/chromium
 * (`apt-get install chromium`; .ci/run installs it) the tests are skipped
 * with one line saying so.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import type { JobJson } from "../lib/job.ts";
import { cliOk, drain, enqueue, showJob, waitFor, withWorker } from "./helpers.ts";
import { type DashboardProcess, withDashboard } from "./dashboard_helpers.ts";
import { PG_IGNORE, withFreshSchema } from "./pg_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const HAVE_CHROMIUM = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!HAVE_CHROMIUM) {
  console.log(
    `dashboard browser tests skipped: no ${CHROMIUM} (apt-get install chromium)`,
  );
}

const SCREENSHOTS = new URL("./screenshots/", import.meta.url).pathname;

/** Debian's Chromium, headless, with a fresh profile in `dir`. */
function launchBrowser(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(`${dir}/chromium-profile`, {
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    viewport: { width: 1100, height: 800 },
  });
}

/** Opens `path` and waits until the script has drawn the page. */
async function open(page: Page, origin: string, path: string): Promise<void> {
  await page.goto(`${origin}${path}`);
  await page.waitForSelector("body[data-ready]", { timeout: 15_000 });
  const notice = await page.$eval("#notice", (node) => [node.className, node.textContent]);
  assert.ok(!notice[0]?.includes("error"), `${path} says: ${notice[1]}`);
}

/** Saves the page as `<name>-light.png` and `<name>-dark.png`. */
async function screenshots(page: Page, name: string, store: string): Promise<void> {
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    await page.screenshot({
      path: `${SCREENSHOTS}${name}-${colorScheme}-${store}.png`,
      fullPage: true,
    });
  }
  await page.emulateMedia({ colorScheme: "light" });
}

/** The counts by state the overview shows. */
function shownCounts(page: Page): Promise<Record<string, number>> {
  return page.$$eval("dd[data-state]", (nodes) =>
    Object.fromEntries(
      nodes.map((node) => [node.getAttribute("data-state"), Number(node.textContent)]),
    ));
}

/**
 * Waits until `expression` is true in the page. Polled with `evaluate`, which the devtools
 * protocol runs outside the page's content security policy (`waitForFunction` evaluates a
 * string in the page, which the policy rightly refuses).
 */
async function waitInPage(page: Page, expression: string): Promise<void> {
  await waitFor(expression, () => page.evaluate<boolean>(expression), { timeoutMs: 10_000 });
}

/** Waits until the page's notice line says `text`. */
function noticeSays(page: Page, text: string): Promise<void> {
  return waitInPage(
    page,
    `document.getElementById("notice")?.textContent === ${JSON.stringify(text)}`,
  );
}

/** A command whose text would run script if a page put it in as markup. */
const HOSTILE =
  "echo '<script>window.__injected = 1</script><img src=x onerror=\"window.__injected=2\">'";

/**
 * The queue the steps work on: two dead jobs, one completed, jobs waiting in
 * paused `mail`, which has limits.
 */
async function seed(db: string): Promise<void> {
  await enqueue(db, '{"id":"broken","command":"echo oops >&2; exit 3","max_retries":0}');
  await enqueue(db, '{"id":"broken2","command":"exit 4","max_retries":0}');
  await enqueue(db, '{"id":"ok","command":"echo hello-out","env":{"A":"1","B":"x y"}}');
  await drain(db, "--queue", "default");
  await enqueue(db, JSON.stringify({ id: "html", command: HOSTILE, queue: "mail" }));
  await enqueue(db, '{"id":"child","command":"true","queue":"mail","after":["ok"]}');
  await cliOk(["pause", "mail"], { db });
  await cliOk(["queue", "set", "mail", "--concurrency", "2", "--rate", "10/1m"], { db });
}

async function checkPages(t: Deno.TestContext, db: string, dir: string, store: string) {
  await Deno.mkdir(SCREENSHOTS, { recursive: true });
  await seed(db);
  const browser = await launchBrowser(dir);
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await withDashboard(db, [], async (dash: DashboardProcess) => {
      const { origin } = dash;

      await t.step("the overview shows the counts by state and the paused queue", async () => {
        await open(page, origin, "/");
        const status = JSON.parse(await cliOk(["status", "--json"], { db }));
        assert.deepEqual(await shownCounts(page), status.jobs);
        assert.equal(status.jobs.dead, 2);
        assert.equal((await page.textContent("#paused"))?.trim(), "mail");
        assert.match(await page.textContent("#main") ?? "", /0\/2 running, 0\/10 per 1m/);
        assert.equal(await page.textContent("#no-workers"), "No worker is running.");
        assert.match(
          await page.textContent("#runs-summary") ?? "",
          /^3 runs in the last 60 minutes, 2 failed; at most [123] in one minute\./,
        );
        assert.equal(await page.$$eval("#runs-chart rect", (bars) => bars.length), 120);
        await screenshots(page, "overview", store);
      });

      await t.step("a job enqueued from the CLI appears without a reload", async () => {
        const before = (await shownCounts(page)).pending;
        await enqueue(db, '{"id":"fresh","command":"true","queue":"mail"}');
        await waitInPage(
          page,
          `document.querySelector('dd[data-state="pending"]')?.textContent === "${before + 1}"`,
        );
        await open(page, origin, "/jobs");
        await enqueue(db, '{"id":"fresher","command":"true","queue":"mail"}');
        await page.waitForSelector('a[href="/jobs/fresher"]', { timeout: 10_000 });
      });

      await t.step("job text shows as text: a command holding <script> runs nothing", async () => {
        await open(page, origin, "/jobs?q=injected");
        const shown = await page.$$eval("main td code", (nodes) => nodes.map((n) => n.textContent));
        assert.deepEqual(shown, [HOSTILE]);
        assert.equal(await page.$$eval("main script, main img", (nodes) => nodes.length), 0);
        await screenshots(page, "jobs", store);
        await open(page, origin, "/jobs/html");
        assert.equal(await page.textContent("#command"), HOSTILE);
        assert.equal(
          await page.evaluate(() => (window as { __injected?: number }).__injected),
          undefined,
        );
        assert.equal(await page.$$eval("main script, main img", (nodes) => nodes.length), 0);
      });

      await t.step("a command enqueued from the jobs page is the CLI's job", async () => {
        await open(page, origin, "/jobs");
        await page.getByText("Enqueue a command", { exact: true }).click();
        const command = `echo "<b>from the page</b>"`;
        await page.getByLabel("Command", { exact: true }).fill(command);
        await page.getByLabel("Queue (default if empty)").fill("mail");
        await page.getByRole("button", { name: "Enqueue", exact: true }).click();
        await waitInPage(
          page,
          `/^Enqueued job \\S+\\.$/.test(document.getElementById("notice").textContent)`,
        );
        const id = /^Enqueued job (\S+)\.$/.exec(await page.textContent("#notice") ?? "")![1];
        const job = await showJob(db, id);
        assert.deepEqual([job.command, job.queue, job.state], [command, "mail", "pending"]);
        await page.waitForSelector(`a[href="/jobs/${id}"]`, { timeout: 10_000 });
        assert.equal(await page.$$eval("main td b", (nodes) => nodes.length), 0, "shown as text");
      });

      await t.step("retry on a dead job in the DLQ makes it pending, as the CLI sees", async () => {
        await open(page, origin, "/dlq");
        await screenshots(page, "dlq", store);
        await page.getByRole("button", { name: "Retry job broken", exact: true }).click();
        await noticeSays(page, "Job broken retried.");
        assert.equal((await showJob(db, "broken")).state, "pending");
        await page.waitForSelector('a[href="/jobs/broken"]', {
          state: "detached",
          timeout: 10_000,
        });
        assert.equal((await showJob(db, "broken2")).state, "dead", "only the one retried");
      });

      await t.step(
        "Retry all matching in the DLQ retries exactly the filter's dead jobs",
        async () => {
          const dead = [
            ["b1", "exit 1", "bulk"],
            ["b2", "exit 1", "bulk"],
            ["b3", "exit 2", "bulk"],
            ["b4", "exit 1", "other"],
          ];
          for (const [id, command, queue] of dead) {
            await enqueue(db, JSON.stringify({ id, command, queue, max_retries: 0 }));
          }
          await drain(db, "--queue", "bulk,other");
          await open(page, origin, "/dlq?queue=bulk&q=exit+1");
          let asked = "";
          page.once("dialog", (dialog) => {
            asked = dialog.message();
            dialog.accept();
          });
          await page.getByRole("button", { name: "Retry all matching", exact: true }).click();
          await noticeSays(page, "Retried 2 dead jobs.");
          assert.equal(asked, "Retry all 2 dead jobs matching this filter?");
          assert.equal((await showJob(db, "b1")).state, "pending");
          assert.equal((await showJob(db, "b2")).state, "pending");
          assert.equal((await showJob(db, "b3")).state, "dead", "not matched by the filter");
          assert.equal((await showJob(db, "b4")).state, "dead", "in another queue");
        },
      );

      await t.step("a filter plus bulk retry acts on exactly the matching jobs", async () => {
        const jobs = [
          { id: "f1", command: "exit 5 # pick", queue: "filt", max_retries: 0 },
          { id: "f2", command: "exit 5", queue: "filt", max_retries: 0 },
          { id: "f3", command: "true # pick", queue: "filt" },
          { id: "f4", command: "exit 5 # pick", queue: "elsewhere", max_retries: 0 },
        ];
        await cliOk(["enqueue", JSON.stringify(jobs)], { db });
        await drain(db, "--queue", "filt,elsewhere");
        await enqueue(db, '{"id":"f5","command":"echo pick","queue":"filt"}');
        await open(page, origin, "/jobs?queue=filt&q=pick");
        let asked = "";
        page.once("dialog", (dialog) => {
          asked = dialog.message();
          dialog.accept();
        });
        // Reached and pressed with the keyboard.
        await page.getByRole("button", { name: "Retry all matching", exact: true }).focus();
        await page.keyboard.press("Enter");
        await noticeSays(page, "Retried 2 jobs; 1 matching job left as it was.");
        assert.equal(
          asked,
          "Retry all 2 jobs matching this filter? 1 other matching job is not finished and left as it is.",
        );
        const states = Object.fromEntries(
          await Promise.all(["f1", "f2", "f3", "f4", "f5"].map(async (id) => {
            const job = await showJob(db, id);
            return [id, `${job.state} ${job.attempts}`];
          })),
        );
        assert.deepEqual(states, {
          f1: "pending 0",
          f2: "dead 1",
          f3: "pending 0",
          f4: "dead 1",
          f5: "pending 0",
        });
      });

      await t.step("the keyboard alone reaches and presses a job's Retry", async () => {
        await open(page, origin, "/jobs?state=dead");
        let reached = false;
        for (let tab = 0; tab < 40 && !reached; tab++) {
          await page.keyboard.press("Tab");
          reached = await page.evaluate(
            `document.activeElement?.getAttribute("aria-label") === "Retry job broken2"`,
          );
        }
        assert.ok(reached, "Tab never reached the Retry button of broken2");
        await page.keyboard.press("Enter");
        await noticeSays(page, "Job broken2 retried.");
        assert.equal((await showJob(db, "broken2")).state, "pending");
        // Its row has left the list of dead jobs: the keyboard goes on from the content.
        await waitInPage(page, `document.activeElement === document.getElementById("main")`);
      });

      await t.step("a running job shows under its worker's host; Kill stops it", async () => {
        await enqueue(db, '{"id":"sleeper","command":"sleep 60","queue":"slow","max_retries":0}');
        await withWorker(db, ["--queue", "slow"], async () => {
          await open(page, origin, "/");
          await page.waitForSelector('#workers a[href="/jobs/sleeper"]', { timeout: 15_000 });
          const [worker] = JSON.parse(await cliOk(["status", "--json"], { db })).workers;
          const section = page.locator("#workers section", { has: page.locator("a") });
          assert.equal(await section.getAttribute("aria-label"), `Workers on ${worker.host}`);
          assert.match(await section.textContent() ?? "", new RegExp(`pid ${worker.pid}`));
          await screenshots(page, "overview-worker", store);
          await open(page, origin, "/jobs?state=processing");
          await page.getByRole("button", { name: "Kill job sleeper", exact: true }).click();
          await noticeSays(page, "Job sleeper asked to stop.");
          await waitFor(
            "the killed job to stop",
            async () => (await showJob(db, "sleeper")).state !== "processing",
          );
        });
      });

      await t.step("the job page follows a running job's output without a reload", async () => {
        const go = `${dir}/go`;
        const command =
          `echo first-line; while [ ! -e '${go}' ]; do sleep 0.05; done; echo second-line; sleep 60`;
        await enqueue(
          db,
          JSON.stringify({ id: "talker", command, queue: "slow", max_retries: 0 }),
        );
        await withWorker(db, ["--queue", "slow"], async () => {
          await open(page, origin, "/jobs/talker");
          const stdout = `document.querySelector('pre[data-stream="stdout"]')?.textContent`;
          await waitInPage(page, `${stdout} === "first-line\\n"`);
          await Deno.writeTextFile(go, "");
          await waitInPage(page, `${stdout} === "first-line\\nsecond-line\\n"`);
          assert.match(await page.textContent("main") ?? "", /still running/);
          await page.getByRole("button", { name: "Kill job talker", exact: true }).click();
          await waitFor(
            "the killed job to stop",
            async () => (await showJob(db, "talker")).state !== "processing",
          );
        });
      });

      await t.step("job detail shows every field, dependencies, attempts and output", async () => {
        await open(page, origin, "/jobs/ok");
        const json = JSON.parse(await cliOk(["show", "ok", "--json"], { db })) as
          & JobJson
          & Record<string, unknown>;
        const fields = await page.$$eval(
          "dd[data-field]",
          (nodes) => nodes.map((node) => [node.getAttribute("data-field"), node.textContent]),
        );
        const expected = Object.entries(json)
          .filter(([key]) => key !== "after" && key !== "history")
          .map(([key, value]) => [key, value === null ? "\u2014" : shownField(key, value)]);
        assert.deepEqual(fields, expected);
        assert.equal(await page.textContent('pre[data-stream="stdout"]'), "hello-out\n");
        assert.equal(await page.$$eval("main table tbody tr", (rows) => rows.length), 1);
        await screenshots(page, "job", store);
        await open(page, origin, "/jobs/child");
        assert.equal(await page.getAttribute('main a[href="/jobs/ok"]', "href"), "/jobs/ok");
      });

      await t.step("each page fits 360 px without scrolling sideways", async () => {
        await page.setViewportSize({ width: 360, height: 740 });
        for (const path of ["/", "/jobs", "/dlq", "/jobs/html"]) {
          await open(page, origin, path);
          const width = await page.evaluate<number>("document.documentElement.scrollWidth");
          assert.ok(width <= 360, `${path} is ${width}px wide at 360px`);
          const name = path === "/" ? "overview" : path.slice(1).replace("/", "-");
          await screenshots(page, `${name}-360px`, store);
        }
        await page.setViewportSize({ width: 1100, height: 800 });
      });
    });
    await withDashboard(db, ["--token", "page-token-1"], async (dash) => {
      await t.step("with a token, the pages work from the cookie of /?token=", async () => {
        assert.match(dash.printed, /\?token=page-token-1$/);
        await page.goto(dash.printed);
        assert.equal(new URL(page.url()).search, "", "the token left the address bar");
        await page.waitForSelector("body[data-ready]", { timeout: 15_000 });
        const status = JSON.parse(await cliOk(["status", "--json"], { db }));
        assert.deepEqual(await shownCounts(page), status.jobs);
        await page.getByRole("button", { name: "Pause queue default", exact: true }).click();
        await noticeSays(page, "Queue default paused.");
        const after = JSON.parse(await cliOk(["status", "--json"], { db }));
        const queue = after.queues.find((q: { name: string }) => q.name === "default");
        assert.equal(queue.paused, true, "status shows the queue paused");
        await waitInPage(page, `document.getElementById("paused")?.textContent === "defaultmail"`);
      });
    });
    await withDashboard(db, ["--read-only"], async (dash) => {
      await t.step("a read-only dashboard offers no action", async () => {
        for (const path of ["/", "/jobs", "/dlq", "/jobs/b3"]) {
          await page.goto(`${dash.origin}${path}`);
          await page.waitForSelector("body[data-ready]", { timeout: 15_000 });
          const buttons = await page.$$eval(
            "main button",
            (nodes) => nodes.map((n) => n.textContent),
          );
          assert.deepEqual(buttons, path === "/jobs" || path === "/dlq" ? ["Filter"] : [], path);
          assert.match(await page.textContent("#notice") ?? "", /read-only/);
        }
      });
    });
    assert.deepEqual(errors, [], "errors in the pages' script");
  } finally {
    await browser.close();
  }
}

/** A temp dir for a test's files, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-browser-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name: "dashboard pages in Chromium (SQLite)",
  ignore: !HAVE_CHROMIUM,
  fn: (t) => inTempDir((dir) => checkPages(t, `${dir}/queue.db`, dir, "sqlite")),
});

Deno.test({
  name: "dashboard pages in Chromium (PostgreSQL)",
  ignore: !HAVE_CHROMIUM || PG_IGNORE,
  fn: (t) =>
    inTempDir((dir) => withFreshSchema((fresh) => checkPages(t, fresh.url, dir, "postgres"))),
});

/** A field of the job detail page as text: a job's env a `NAME=value` a line, none as a dash. */
function shownField(key: string, value: unknown): string {
  if (key !== "env") return String(value);
  const env = Object.entries(value as Record<string, string>);
  return env.length === 0 ? "\u2014" : env.map(([name, text]) => `${name}=${text}`).join("");
}
