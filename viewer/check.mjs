// Open a report page in headless Chromium from file://, wait in real time for the viewer, screenshot its canvas.
//
//   node check.mjs --browser /usr/bin/chromium-headless-shell --page reports/index.html --shot /tmp/viewer.png
//
// Prints one JSON object: the viewer's state ("ready", "error", "no-webgl", "empty", or "timeout"), every request
// the page made (URL scheme and URL), console errors, page errors, and the viewer's splat count. The caller
// (tests/test_report_browser.py) judges the screenshot and the requests. puppeteer-core never downloads a browser:
// it drives the one given. Real-time waits, not --virtual-time-budget, which captured a blank frame
// (../shared/NOTES.md). Any attempt to reach the network is also sent to a dead proxy and a resolver that
// resolves nothing, so a page that tries is seen trying and gets nothing.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import puppeteer from "puppeteer-core";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const timeoutMs = Number(args.timeout || 60000);
const settleMs = Number(args.settle || 1500);
const profile = mkdtempSync(join(tmpdir(), "fairsplat-chromium-"));
const flags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
  `--user-data-dir=${profile}`, "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
  "--window-size=1100,900",
];
const out = { state: "timeout", requests: [], console_errors: [], page_errors: [], splats: null, canvas: null };
let browser;
try {
  browser = await puppeteer.launch({ executablePath: args.browser, headless: true, args: flags, userDataDir: profile,
                                     defaultViewport: { width: 1100, height: 900 }, timeout: timeoutMs });
  const page = await browser.newPage();
  page.on("request", (r) => out.requests.push({ scheme: new URL(r.url()).protocol.replace(":", ""), url: r.url().slice(0, 200) }));
  page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text().slice(0, 300)); });
  page.on("pageerror", (e) => out.page_errors.push(String(e).slice(0, 300)));
  await page.goto(pathToFileURL(resolve(args.page)).href, { waitUntil: "load", timeout: timeoutMs });
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const state = await page.evaluate(() => document.body.dataset.viewer || null);
    if (state) { out.state = state; break; }
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, settleMs)); // a real-time wait for Spark's sort and a few more frames
  out.wait_ms = Date.now() - t0;
  out.splats = await page.evaluate(() => (window.fairsplatViewer ? window.fairsplatViewer.splats : null));
  const canvas = await page.$("#fairsplat-canvas");
  if (canvas && args.shot) {
    out.canvas = await canvas.boundingBox();
    await canvas.screenshot({ path: args.shot });
  }
  if (args.fullshot) await page.screenshot({ path: args.fullshot, fullPage: true });
} catch (err) {
  out.error = String(err).slice(0, 500);
} finally {
  if (browser) await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out) + "\n");
