/**
 * The dashboard pages' script, served as `/assets/dashboard.js`
 * (lib/dashboard/page.ts): it draws the page the address names from the
 * JSON API, and redraws it on each `change` event of `/api/events` (no
 * polling). A module that exports a string, so that the release bundle
 * carries it with the code.
 *
 * Job text is data: every value from the API reaches the page as a text
 * node (`textContent`, `createTextNode`), never as markup, so a command
 * holding `<script>` shows as those characters. Actions are `fetch` POSTs
 * with a JSON body from the page's own origin, which the server's CSRF
 * check lets through; the session cookie rides along, so the script never
 * needs the token.
 *
 * @module
 */

import { DELETABLE_STATES, JOB_STATES, TRANSITIONS } from "../states.ts";

/** The JavaScript of every page (plain ES2020, no build step, no eval). */
export const PAGE_SCRIPT = String.raw`"use strict";
(() => {
  const STATES = ${JSON.stringify(JOB_STATES)};
  const RETRYABLE = ${JSON.stringify(TRANSITIONS.rerun.from)};
  const DELETABLE = ${JSON.stringify(DELETABLE_STATES)};
  const PAGE_SIZE = 50;
  const main = document.getElementById("main");
  const notice = document.getElementById("notice");
  // The server refuses every action then (403): no control offers one.
  const READ_ONLY = document.body.hasAttribute("data-read-only");

  /** How full a queue's limits are, as the CLI's status says it: "2/3 running, 5/10 per 1m". */
  function limitsUsage(queue) {
    const parts = [];
    if (queue.concurrency !== null) parts.push(queue.counts.processing + "/" + queue.concurrency + " running");
    if (queue.rate !== null) {
      const ms = queue.rate.period_ms;
      const unit = [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000]]
        .find(([, size]) => ms >= size && ms % size === 0);
      const window = unit ? ms / unit[1] + unit[0] : ms >= 1000 ? ms / 1000 + "s" : ms + "ms";
      parts.push(queue.rate.starts_in_window + "/" + queue.rate.limit + " per " + window);
    }
    return parts.length === 0 ? "none" : parts.join(", ");
  }

  /** Replaces node's children: nested arrays flattened, strings as text nodes, empties left out. */
  function fill(node, ...children) {
    node.replaceChildren();
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** An element with attributes, listeners (on...) and children, as fill() takes them. */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
    }
    return fill(node, ...children);
  }

  function say(text, isError) {
    notice.textContent = text;
    notice.className = isError ? "notice error" : "notice";
  }

  async function answer(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      throw new Error((body && body.error) || "the server answered " + response.status);
    }
    return body;
  }

  function getJson(path) {
    return fetch(path, { headers: { accept: "application/json" } }).then(answer);
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body || {}),
    }).then(answer);
  }

  const jobPath = (id) => "/jobs/" + encodeURIComponent(id);
  const apiJob = (id) => "/api/jobs/" + encodeURIComponent(id);
  const shown = (value) => value === null || value === undefined ? "\u2014" : String(value);
  /** A job's environment, a variable a line. */
  const envText = (env) => Object.keys(env).length === 0 ? "\u2014" : Object.entries(env).map(([name, value]) => h("div", {}, h("code", {}, name + "=" + value)));
  const time = (iso) => iso ? h("time", { datetime: iso }, iso.replace("T", " ").replace(/\.\d+Z$/, "Z")) : "\u2014";

  /**
   * Draws with draw(redraw) now and after every change event, one draw at a time
   * (changes during a draw cause one more), keeping the keyboard focus on
   * the same control when it is drawn again.
   */
  async function live(draw) {
    let drawing = false;
    let again = false;
    const redraw = async () => {
      if (drawing) {
        again = true;
        return;
      }
      drawing = true;
      try {
        do {
          again = false;
          const focused = document.activeElement && document.activeElement.dataset
            ? document.activeElement.dataset.focusKey
            : undefined;
          await draw(redraw);
          if (focused) {
            const same = [...document.querySelectorAll("[data-focus-key]")]
              .find((node) => node.dataset.focusKey === focused);
            // A control whose job left the page (retried out of the DLQ, deleted): the keyboard
            // goes on from the start of the content rather than from the top of the page.
            if (same) same.focus();
            else if (!document.activeElement || document.activeElement === document.body) main.focus();
          }
        } while (again);
      } catch (error) {
        say(error.message, true);
      } finally {
        drawing = false;
      }
    };
    await redraw();
    const events = new EventSource("/api/events");
    // The stream opens with the counts as they are: one more draw, which also catches a change
    // made between the first draw and the stream's start.
    events.addEventListener("change", () => redraw());
    return redraw;
  }

  /** Runs an action on job id, says how it went, and draws the page again. */
  async function jobAction(kind, id, redraw) {
    if (kind === "delete" && !confirm("Delete job " + id + "? This cannot be undone.")) return;
    try {
      await post(apiJob(id) + "/" + kind, {});
      const done = { retry: "retried", kill: "asked to stop", delete: "deleted" }[kind];
      say("Job " + id + " " + done + ".");
    } catch (error) {
      say("Could not " + kind + " job " + id + ": " + error.message, true);
    }
    await redraw();
  }

  function actionButtons(job, redraw) {
    if (READ_ONLY) return [];
    const button = (kind, label, className) =>
      h("button", {
        type: "button",
        className,
        "aria-label": label + " job " + job.id,
        "data-focus-key": kind + "\u0000" + job.id,
        onclick: () => jobAction(kind, job.id, redraw),
      }, label);
    return [
      RETRYABLE.includes(job.state) && button("retry", "Retry"),
      job.state === "processing" && button("kill", "Kill", "danger"),
      DELETABLE.includes(job.state) && button("delete", "Delete", "danger"),
    ];
  }

  /** How long ago iso was, as 45s, 3m 05s or 2h 10m. */
  function elapsed(iso) {
    const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    const two = (n) => String(n).padStart(2, "0");
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + two(seconds % 60) + "s";
    return Math.floor(seconds / 3600) + "h " + two(Math.floor(seconds / 60) % 60) + "m";
  }

  // Elapsed times tick in the page itself: no request.
  setInterval(() => {
    for (const node of document.querySelectorAll("[data-since]")) {
      node.textContent = elapsed(node.dataset.since);
    }
  }, 1000);

  /** An SVG element with attributes and children. */
  function svg(tag, attributes, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    for (const child of children) node.appendChild(child);
    return node;
  }

  /** Runs per minute as stacked bars (succeeded below, failed above), with a summary in words. */
  function runsChart(minutes) {
    const width = 600;
    const height = 120;
    const slot = width / minutes.length;
    const total = (m) => m.succeeded + m.failed;
    const highest = Math.max(1, ...minutes.map(total));
    const runs = minutes.reduce((sum, m) => sum + total(m), 0);
    const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
    const summary = runs + " runs in the last " + minutes.length + " minutes, " + failed +
      " failed; at most " + Math.max(0, ...minutes.map(total)) + " in one minute.";
    const bars = minutes.map((m, i) => {
      const okHeight = (m.succeeded / highest) * height;
      const failedHeight = (m.failed / highest) * height;
      const label = document.createElementNS("http://www.w3.org/2000/svg", "title");
      label.textContent = m.minute.slice(11, 16) + " UTC: " + m.succeeded + " succeeded, " + m.failed + " failed";
      return svg("g", {}, label,
        svg("rect", { class: "bar-ok", x: i * slot, y: height - okHeight, width: slot * 0.8, height: okHeight }),
        svg("rect", { class: "bar-failed", x: i * slot, y: height - okHeight - failedHeight, width: slot * 0.8, height: failedHeight }));
    });
    return h("figure", { className: "chart" },
      svg("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img",
        "aria-label": "Runs per minute: " + summary, id: "runs-chart" },
        svg("line", { class: "axis", x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }), ...bars),
      h("figcaption", { id: "runs-summary" }, summary,
        h("span", { className: "muted" }, " Oldest minute on the left, the current one on the right; green: succeeded, red: failed.")));
  }

  const stateText = (state) => h("span", { className: "state state-" + state }, state);

  function table(caption, headings, rows) {
    return h("table", { className: "rows" },
      h("caption", { className: "muted" }, caption),
      h("thead", {}, h("tr", {}, headings.map(([text, cls]) => h("th", { scope: "col", className: cls }, text)))),
      h("tbody", {}, rows.map((cells) =>
        h("tr", {}, cells.map((cell, i) =>
          h("td", { "data-label": headings[i][0], className: headings[i][1] }, cell))))));
  }

  // ---- Overview ----

  async function overview() {
    document.title = "Overview \u00b7 queuectl";
    const body = h("div");
    fill(main, h("h1", {}, "Overview"), body);
    await live(async (redraw) => {
      const [status, running, runs] = await Promise.all([
        getJson("/api/status"),
        getJson("/api/jobs?state=processing&limit=1000"),
        getJson("/api/runs?minutes=60"),
      ]);
      const runningBy = new Map();
      for (const job of running.jobs) {
        if (!runningBy.has(job.worker_id)) runningBy.set(job.worker_id, []);
        runningBy.get(job.worker_id).push(job);
      }
      const counts = h("dl", { className: "counts", id: "counts" }, STATES.map((state) =>
        h("div", {},
          h("dt", {}, h("a", { href: "/jobs?state=" + state }, state)),
          h("dd", { "data-state": state }, String(status.jobs[state] ?? 0)))));
      const queues = status.queues.length === 0
        ? h("p", { className: "muted" }, "No queue holds a job.")
        : table("Jobs by queue and state", [["Queue"], ...STATES.map((s) => [s, "num"]), ["Paused"], ["Limits"], ["Actions", "actions"]],
          status.queues.map((queue) => [
            h("a", { href: "/jobs?queue=" + encodeURIComponent(queue.name) }, queue.name),
            ...STATES.map((state) => String(queue.counts[state] ?? 0)),
            queue.paused ? h("span", {}, "paused since ", time(queue.paused_at)) : "no",
            limitsUsage(queue),
            !READ_ONLY && h("button", {
              type: "button",
              "aria-label": (queue.paused ? "Resume" : "Pause") + " queue " + queue.name,
              "data-focus-key": "queue\u0000" + queue.name,
              onclick: async () => {
                const verb = queue.paused ? "resume" : "pause";
                try {
                  await post("/api/queues/" + encodeURIComponent(queue.name) + "/" + verb, {});
                  say("Queue " + queue.name + (queue.paused ? " resumed." : " paused."));
                } catch (error) {
                  say("Could not " + verb + " queue " + queue.name + ": " + error.message, true);
                }
                await redraw();
              },
            }, queue.paused ? "Resume" : "Pause"),
          ]));
      const hosts = new Map();
      for (const worker of status.workers) {
        if (!hosts.has(worker.host)) hosts.set(worker.host, []);
        hosts.get(worker.host).push(worker);
      }
      const workers = hosts.size === 0
        ? h("p", { className: "muted", id: "no-workers" }, "No worker is running.")
        : [...hosts].map(([host, list]) => h("section", { "aria-label": "Workers on " + host },
          h("h3", {}, host),
          table("Live workers on " + host, [["Process"], ["Threads", "num"], ["Started"], ["Heartbeat"], ["State"], ["Running jobs"]],
            list.map((worker) => [
              "pid " + worker.pid,
              String(worker.threads),
              time(worker.started_at),
              time(worker.heartbeat_at),
              worker.stopping ? "stopping" : "running",
              (runningBy.get(worker.id) || []).length === 0
                ? h("span", { className: "muted" }, "none")
                : h("ul", { className: "running" }, runningBy.get(worker.id).map((job) =>
                  h("li", {}, h("a", { href: jobPath(job.id) }, job.id), " for ",
                    h("span", { "data-since": job.started_at }, elapsed(job.started_at))))),
            ]))));
      const paused = status.queues.filter((queue) => queue.paused);
      fill(body, 
        h("h2", {}, "Jobs by state"), counts,
        h("h2", {}, "Runs per minute, last hour"), runsChart(runs.minutes),
        h("h2", {}, "Queues"), queues,
        h("h2", {}, "Paused queues"),
        paused.length === 0
          ? h("p", { className: "muted", id: "paused" }, "None.")
          : h("ul", { id: "paused" }, paused.map((queue) => h("li", {}, queue.name))),
        h("h2", {}, "Live workers by host"), h("div", { id: "workers" }, workers));
    });
  }

  // ---- Jobs and DLQ ----

  async function jobList(dlq) {
    const params = new URLSearchParams(location.search);
    const base = dlq ? "/dlq" : "/jobs";
    const title = dlq ? "Dead letter queue" : "Jobs";
    document.title = title + " \u00b7 queuectl";
    const state = dlq ? "dead" : params.get("state") || "";
    const queue = params.get("queue") || "";
    const text = params.get("q") || "";
    const cursor = params.get("cursor") || "";
    const field = (label, control) => h("label", {}, label, control);
    const form = h("form", { className: "filters", method: "get", action: base, role: "search", "aria-label": "Filter jobs" },
      !dlq && field("State", h("select", { name: "state" },
        h("option", { value: "" }, "any"),
        STATES.map((s) => h("option", { value: s, selected: s === state }, s)))),
      field("Queue", h("input", { name: "queue", value: queue, autocomplete: "off" })),
      field("Id or command contains", h("input", { type: "search", name: "q", value: text, autocomplete: "off" })),
      h("button", { type: "submit" }, "Filter"));
    const results = h("div");
    let redrawList = async () => {};
    /** Retries every dead job the filter matches: counted first, then asked about, then exactly those. */
    const retryAll = async () => {
      try {
        const ids = [];
        let next = "";
        do {
          const query = new URLSearchParams({ state: "dead", limit: "1000" });
          if (queue) query.set("queue", queue);
          if (text) query.set("q", text);
          if (next) query.set("cursor", next);
          const page = await getJson("/api/jobs?" + query);
          ids.push(...page.jobs.map((job) => job.id));
          next = page.next_cursor || "";
        } while (next);
        if (ids.length === 0) {
          say("No dead job matches.");
          return;
        }
        const what = ids.length === 1 ? "the 1 dead job" : "all " + ids.length + " dead jobs";
        if (!confirm("Retry " + what + " matching this filter?")) return;
        const result = await post("/api/dlq/retry", { ids });
        say("Retried " + result.retried.length + " dead jobs.");
      } catch (error) {
        say("Could not retry the matching jobs: " + error.message, true);
      }
      await redrawList();
    };
    /**
     * Retries or deletes every job the filter matches (POST /api/bulk): counted first, the count
     * asked about, then done by the server in batches to whatever matches then.
     */
    const bulk = async (action) => {
      const retry = action === "retry";
      try {
        const filter = {};
        if (state) filter.state = state;
        if (queue) filter.queue = queue;
        if (text) filter.q = text;
        const count = await getJson("/api/bulk?" + new URLSearchParams({ action, ...filter }));
        const others = count.matching - count.eligible;
        const skipped = others === 0 ? "" : " " + others + (others === 1 ? " other matching job is " : " other matching jobs are ") +
          (retry ? "not finished" : "running") + " and left as " + (others === 1 ? "it is." : "they are.");
        if (count.eligible === 0) {
          say("No matching job can be " + (retry ? "retried" : "deleted") + "." + skipped);
          return;
        }
        const what = count.eligible === 1 ? "the 1 job" : "all " + count.eligible + " jobs";
        if (!confirm((retry ? "Retry " : "Delete ") + what + " matching this filter?" + skipped)) return;
        const result = await post("/api/bulk", { action, ...filter });
        say((retry ? "Retried " : "Deleted ") + result.done + (result.done === 1 ? " job" : " jobs") +
          (result.left === 0 ? "." : "; " + result.left +
            (result.left === 1 ? " matching job left as it was." : " matching jobs left as they were.")));
      } catch (error) {
        say("Could not " + action + " the matching jobs: " + error.message, true);
      }
      await redrawList();
    };
    /** Enqueues the form's command, as the CLI's enqueue of a spec with command and queue. */
    const enqueueForm = h("form", {
      className: "filters",
      "aria-label": "Enqueue a command",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const spec = { command: String(data.get("command")) };
        if (String(data.get("queue")).trim()) spec.queue = String(data.get("queue")).trim();
        try {
          const created = await post("/api/jobs", spec);
          say("Enqueued job " + created.ids[0] + ".");
          event.target.reset();
        } catch (error) {
          say("Could not enqueue: " + error.message, true);
        }
        await redrawList();
      },
    },
      field("Command", h("input", { name: "command", required: true, autocomplete: "off", size: 40 })),
      field("Queue (default if empty)", h("input", { name: "queue", autocomplete: "off" })),
      h("button", { type: "submit" }, "Enqueue"));
    fill(main, h("h1", {}, title), form,
      !dlq && !READ_ONLY && h("details", {}, h("summary", {}, "Enqueue a command"), enqueueForm),
      dlq && !READ_ONLY && h("p", {}, h("button", { type: "button", id: "retry-all", onclick: retryAll }, "Retry all matching")),
      !dlq && !READ_ONLY && h("p", { className: "bulk" },
        h("button", { type: "button", id: "retry-matching", onclick: () => bulk("retry") }, "Retry all matching"),
        h("button", { type: "button", id: "delete-matching", onclick: () => bulk("delete") }, "Delete all matching")),
      results);
    redrawList = await live(async (redraw) => {
      const query = new URLSearchParams();
      if (state) query.set("state", state);
      if (queue) query.set("queue", queue);
      if (text) query.set("q", text);
      query.set("limit", String(PAGE_SIZE));
      if (cursor) query.set("cursor", cursor);
      const page = await getJson("/api/jobs?" + query);
      const rows = page.jobs.map((job) => [
        h("a", { href: jobPath(job.id) }, job.id),
        stateText(job.state),
        job.queue,
        h("code", {}, job.command),
        job.attempts + " of " + (job.max_retries + 1),
        dlq ? shown(job.last_error) : time(job.created_at),
        actionButtons(job, redraw),
      ]);
      const pager = [];
      if (cursor) {
        const first = new URLSearchParams(params);
        first.delete("cursor");
        pager.push(h("a", { href: base + "?" + first }, "First page"));
      }
      if (page.next_cursor) {
        const next = new URLSearchParams(params);
        next.set("cursor", page.next_cursor);
        pager.push(h("a", { href: base + "?" + next, rel: "next" }, "Next page"));
      }
      fill(results, 
        rows.length === 0
          ? h("p", { className: "muted" }, dlq ? "No dead job matches." : "No job matches.")
          : table(title + ", newest first", [["Id"], ["State"], ["Queue"], ["Command"], ["Attempts"],
            [dlq ? "Last error" : "Created"], ["Actions", "actions"]], rows),
        h("div", { className: "pager" }, pager));
    });
  }

  // ---- Job detail ----

  async function jobDetail(id) {
    document.title = "Job " + id + " \u00b7 queuectl";
    const body = h("div");
    fill(main, h("h1", {}, "Job ", h("code", {}, id)), body);
    await live(async (redraw) => {
      let job;
      try {
        job = await getJson(apiJob(id));
      } catch (error) {
        fill(body, h("p", { className: "notice error" }, error.message));
        return;
      }
      const output = await getJson(apiJob(id) + "/output");
      const fields = Object.entries(job).filter(([key]) => key !== "after" && key !== "history");
      const stream = (name, textValue, dropped) => [
        h("h3", {}, name, dropped > 0 ? h("span", { className: "muted" }, " (first " + dropped + " bytes not kept)") : ""),
        textValue === "" ? h("p", { className: "muted" }, "(empty)") : h("pre", { "data-stream": name }, textValue),
      ];
      fill(body, 
        h("div", { className: "actions" }, actionButtons(job, redraw)),
        h("h2", {}, "Command"), h("pre", { id: "command" }, job.command),
        h("h2", {}, "Fields"),
        h("dl", { className: "fields" }, fields.map(([key, value]) =>
          [h("dt", {}, key), h("dd", { "data-field": key }, key === "state" ? stateText(value) : key === "env" ? envText(value) : shown(value))])),
        h("h2", {}, "Runs after"),
        job.after.length === 0
          ? h("p", { className: "muted" }, "No dependency.")
          : h("ul", {}, job.after.map((dep) =>
            h("li", {}, h("a", { href: jobPath(dep.id) }, dep.id), " (", dep.state ?? "deleted", ")"))),
        h("h2", {}, "Attempts"),
        job.history.length === 0
          ? h("p", { className: "muted" }, "No run has finished.")
          : table("Finished runs", [["Attempt", "num"], ["Started"], ["Finished"], ["Exit code", "num"], ["Error"]],
            job.history.map((run) => [String(run.attempt), time(run.started_at), time(run.finished_at),
              shown(run.exit_code), shown(run.error)])),
        h("h2", {}, "Latest output"),
        output.attempt === null
          ? h("p", { className: "muted" }, "No output yet.")
          : [h("p", { className: "muted" }, "Attempt " + output.attempt + (output.running ? ", still running" : "")),
            stream("stdout", output.stdout, output.stdout_dropped),
            stream("stderr", output.stderr, output.stderr_dropped)]);
    });
  }

  // ---- Routing ----

  for (const link of document.querySelectorAll("nav a")) {
    const path = link.getAttribute("href");
    const here = location.pathname === path || (path === "/jobs" && location.pathname.startsWith("/jobs/"));
    if (here) link.setAttribute("aria-current", "page");
  }
  if (READ_ONLY) say("This dashboard is read-only: it shows the queue but takes no action.");
  const path = location.pathname;
  const detail = /^\/jobs\/([^/]+)$/.exec(path);
  let shownPage;
  if (path === "/") shownPage = overview();
  else if (path === "/jobs") shownPage = jobList(false);
  else if (path === "/dlq") shownPage = jobList(true);
  else if (detail) shownPage = jobDetail(decodeURIComponent(detail[1]));
  else shownPage = Promise.resolve(fill(main, h("h1", {}, "No such page")));
  shownPage.then(() => document.body.setAttribute("data-ready", ""), (error) => say(error.message, true));
})();
`;
