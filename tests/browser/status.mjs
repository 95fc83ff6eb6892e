// The status page in a real browser: headless Chromium (Debian's package)
// driven by playwright-core, checked with axe-core.
//
// Run by the Rust test `it::browser` against a running `lifeline serve`
// whose providers are simulated. The script itself drives the outage:
//
// 1. With traffic flowing, every component is operational.
// 2. Every simulated provider fails: the page shows the component degraded
//    (or worse) and an automatic incident, within seconds.
// 3. The providers recover: the incident is resolved and the component is
//    operational again.
//
// Throughout: no console errors; axe-core finds no serious or critical
// violation (light and dark); screenshots land in SCREENSHOT_DIR.
//
// Environment: STATUS_URL (base URL of the status page), GATEWAY_URL (data
// plane), MODEL (a public model), MOCKS (comma-separated base URLs of the
// simulated providers), SCREENSHOT_DIR, CHROMIUM (default /usr/bin/chromium).

import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import { mkdirSync, readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const STATUS_URL = env("STATUS_URL");
const GATEWAY_URL = env("GATEWAY_URL");
const MODEL = env("MODEL");
const MOCKS = env("MOCKS").split(",").filter(Boolean);
const SHOTS = env("SCREENSHOT_DIR");
const WAIT_MS = Number(env("WAIT_MS", "90000"));
mkdirSync(SHOTS, { recursive: true });

const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const log = (...a) => console.log("[browser]", ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Background traffic, as an application would send it.
let traffic = true;
const trafficLoop = (async () => {
  while (traffic) {
    try {
      await fetch(`${GATEWAY_URL}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
        signal: AbortSignal.timeout(10000),
      }).then((r) => r.arrayBuffer());
    } catch {
      // Failures are what the page is about; keep sending.
    }
    await sleep(50);
  }
})();

async function faults(body) {
  for (const m of MOCKS) {
    const r = await fetch(`${m}/_mock/faults`, {
      method: body ? "POST" : "DELETE",
      headers: { "content-type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!r.ok) throw new Error(`${m}/_mock/faults: HTTP ${r.status}`);
  }
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const consoleErrors = [];
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("response", (r) => {
    if (r.status() >= 400) consoleErrors.push(`HTTP ${r.status()} for ${r.url()}`);
  });

  // What the page says, read from its markup: each component carries
  // data-component and data-status; each incident data-incident and
  // data-incident-status.
  const read = () =>
    page.evaluate(() => ({
      components: [...document.querySelectorAll("[data-component]")].map((e) => ({
        id: e.getAttribute("data-component"),
        status: e.getAttribute("data-status"),
      })),
      incidents: [...document.querySelectorAll("[data-incident]")].map((e) => ({
        id: e.getAttribute("data-incident"),
        status: e.getAttribute("data-incident-status"),
        text: e.textContent,
      })),
    }));

  // Reloads the page until `ok(state)` holds.
  async function until(what, ok) {
    const deadline = Date.now() + WAIT_MS;
    let state;
    while (Date.now() < deadline) {
      await page.goto(`${STATUS_URL}/status`, { waitUntil: "load" });
      state = await read();
      if (ok(state)) {
        log(`${what}: yes`);
        return state;
      }
      await sleep(500);
    }
    throw new Error(`${what}: not within ${WAIT_MS} ms; last seen ${JSON.stringify(state)}`);
  }

  async function axe(label) {
    // Evaluated through the DevTools protocol rather than added as a
    // <script>: the page's Content-Security-Policy rightly refuses inline
    // scripts it does not know, and stays in force for the page's own.
    await page.evaluate(axeSource);
    const result = await page.evaluate(() =>
      // eslint-disable-next-line no-undef
      axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] }),
    );
    const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    for (const v of result.violations) {
      log(`axe (${label}): ${v.impact} ${v.id}: ${v.help} (${v.nodes.length} nodes)`);
    }
    if (bad.length) throw new Error(`axe (${label}): ${bad.length} serious or critical violation(s)`);
  }

  const chat = (s) => s.components.filter((c) => c.id !== "gateway");
  await until("all components operational", (s) =>
    s.components.length > 0 && s.components.every((c) => c.status === "operational"),
  );
  await axe("light");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.goto(`${STATUS_URL}/status`, { waitUntil: "load" });
  await axe("dark");
  await page.emulateMedia({ colorScheme: "light" });
  await page.screenshot({ path: `${SHOTS}/status-operational.png`, fullPage: true });

  log("failing every simulated provider");
  await faults({ error_rate: 1.0, error_status: 500 });
  await until("a degraded component and an automatic incident", (s) =>
    chat(s).some((c) => c.status !== "operational") &&
    s.incidents.some((i) => i.status !== "resolved" && i.status !== "postmortem"),
  );
  await page.screenshot({ path: `${SHOTS}/status-incident.png`, fullPage: true });
  await axe("during the incident");

  log("providers recover");
  await faults(null);
  await until("the incident resolved and every component operational", (s) =>
    s.components.every((c) => c.status === "operational") &&
    s.incidents.length > 0 &&
    s.incidents.every((i) => i.status === "resolved" || i.status === "postmortem"),
  );
  await page.screenshot({ path: `${SHOTS}/status-resolved.png`, fullPage: true });

  // A phone-sized viewport renders without horizontal scrolling.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(`${STATUS_URL}/status`, { waitUntil: "load" });
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  if (overflow > 1) throw new Error(`the page scrolls sideways on a phone by ${overflow}px`);
  await page.screenshot({ path: `${SHOTS}/status-phone.png`, fullPage: true });

  if (consoleErrors.length) throw new Error(`console errors: ${consoleErrors.join(" | ")}`);
  log("ok");
} catch (e) {
  failed = true;
  console.error("[browser] FAILED:", e.message);
} finally {
  traffic = false;
  await trafficLoop;
  await browser.close();
}
process.exit(failed ? 1 : 0);
