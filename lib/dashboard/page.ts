/**
 * The dashboard's web pages: `/` (overview), `/jobs`, `/jobs/<id>` and
 * `/dlq` all answer one small HTML shell, whose script
 * (lib/dashboard/page_script.ts, at `/assets/dashboard.js`) draws the page
 * the address names from the JSON API; its style sheet is
 * lib/dashboard/page_style.ts at `/assets/dashboard.css`. Both are files of
 * the same origin, so the pages' content security policy allows scripts,
 * styles and connections from `'self'` only: no inline script, no eval.
 *
 * @module
 */

import { PAGE_SCRIPT } from "./page_script.ts";
import { PAGE_STYLE } from "./page_style.ts";

/** Where the pages' script and style sheet are served. */
export const SCRIPT_PATH = "/assets/dashboard.js";
export const STYLE_PATH = "/assets/dashboard.css";

/**
 * The content security policy of the pages: their own script, style sheet
 * and API, nothing else (no inline code, no other site, no framing).
 */
export const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
  "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/**
 * The shell every page starts from; the script fills `<main>`. A read-only
 * dashboard says so on `<body>`, and the script then offers no action.
 */
const shell = (readOnly: boolean) =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>queuectl dashboard</title>
<link rel="stylesheet" href="${STYLE_PATH}">
<script src="${SCRIPT_PATH}" defer></script>
</head>
<body${readOnly ? " data-read-only" : ""}>
<a class="skip" href="#main">Skip to content</a>
<header>
<span class="brand">queuectl</span>
<nav aria-label="Dashboard"><ul>
<li><a href="/">Overview</a></li>
<li><a href="/jobs">Jobs</a></li>
<li><a href="/dlq">Dead letter queue</a></li>
</ul></nav>
</header>
<p id="notice" class="notice" role="status" aria-live="polite"></p>
<main id="main" tabindex="-1"><p>Loading…</p></main>
</body>
</html>
`;

/** Whether `path` is one of the pages (answered with the shell). */
export function isPagePath(path: string): boolean {
  return path === "/" || path === "/jobs" || path === "/dlq" || /^\/jobs\/[^/]+$/.test(path);
}

/**
 * The answer to `GET path` when it is a page or one of its assets;
 * undefined for any other path.
 */
export function pageResponse(path: string, readOnly = false): Response | undefined {
  if (isPagePath(path)) {
    return new Response(shell(readOnly), {
      headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": PAGE_CSP },
    });
  }
  if (path === SCRIPT_PATH) {
    return new Response(PAGE_SCRIPT, {
      headers: { "content-type": "text/javascript; charset=utf-8" },
    });
  }
  // Browsers ask for it by themselves; none is better than a 404 in every page's console.
  if (path === "/favicon.ico") return new Response(null, { status: 204 });
  if (path === STYLE_PATH) {
    return new Response(PAGE_STYLE, { headers: { "content-type": "text/css; charset=utf-8" } });
  }
  return undefined;
}
