// Page weight in headless Chromium on an emulated poor link (issue 18): for each page, the
// bytes transferred and the time until the page is interactive, on a first visit (empty
// cache) and a repeat visit (warm cache). Run by scripts/bench-page-weight (see there and
// BENCHMARKS.md); not a test.
//
// Network: the DevTools protocol's Network.emulateNetworkConditions (what Playwright exposes
// through a CDP session): 10 Mbit/s down, 10 Mbit/s up, 100 ms round trip.
// Bytes: the sum of Network.loadingFinished encodedDataLength (headers and body as they
// crossed the wire) over every request the visit made, from navigation until interactive.
// Interactive: window.__lookoutHydrated is true (set by the wasm once the page is
// interactive — hydrated then, enhanced now), read as performance.now() since navigation.
import { chromium } from "playwright";

const base = process.env.LOOKOUT_URL;
const user = process.env.LOOKOUT_USER ?? "admin";
const password = process.env.LOOKOUT_PASSWORD;
const runs = Number(process.env.BENCH_RUNS ?? 3);
const pages = process.argv.slice(2);
if (!base || !password || pages.length === 0) {
  console.error("usage: LOOKOUT_URL=… LOOKOUT_PASSWORD=… node page-weight.mjs PATH…");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-quic"],
});

async function visit(context, path) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 100,
    downloadThroughput: (10 * 1000 * 1000) / 8,
    uploadThroughput: (10 * 1000 * 1000) / 8,
  });
  let bytes = 0;
  let requests = 0;
  const html = { bytes: 0 };
  const urls = new Map();
  cdp.on("Network.responseReceived", (e) => urls.set(e.requestId, e.response.url));
  cdp.on("Network.loadingFinished", (e) => {
    bytes += e.encodedDataLength;
    requests += 1;
    const u = urls.get(e.requestId) ?? "";
    if (new URL(u).pathname === path.split("?")[0]) html.bytes += e.encodedDataLength;
  });
  await page.goto(base + path, { waitUntil: "commit" });
  const interactive = await page.waitForFunction(() => window.__lookoutHydrated === true && performance.now(), null, {
    polling: 5,
    timeout: 60_000,
  });
  const ms = await interactive.jsonValue();
  // Anything the page still fetches right after (none expected) is counted too.
  await page.waitForLoadState("networkidle").catch(() => {});
  await page.close();
  return { bytes, requests, ms, html: html.bytes };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const path of pages) {
  const first = [];
  const repeat = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    const login = await context.request.post(base + "/auth/login", {
      form: { username: user, password, next: "/" },
      headers: { origin: base },
      maxRedirects: 0,
    });
    if (login.status() >= 400) throw new Error(`sign-in failed: ${login.status()}`);
    first.push(await visit(context, path));
    repeat.push(await visit(context, path));
    await context.close();
  }
  const pick = (xs, k) => median(xs.map((x) => x[k]));
  rows.push({
    path,
    first_kb: (pick(first, "bytes") / 1000).toFixed(1),
    first_html_kb: (pick(first, "html") / 1000).toFixed(1),
    first_requests: pick(first, "requests"),
    first_ms: Math.round(pick(first, "ms")),
    repeat_kb: (pick(repeat, "bytes") / 1000).toFixed(1),
    repeat_requests: pick(repeat, "requests"),
    repeat_ms: Math.round(pick(repeat, "ms")),
  });
}
await browser.close();

console.log(`\nmedian of ${runs} runs, 10 Mbit/s, 100 ms RTT (KB = 1,000 bytes on the wire, headers included)\n`);
console.log("| page | first visit: KB (HTML KB) | requests | interactive ms | repeat visit: KB | requests | interactive ms |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| \`${r.path}\` | ${r.first_kb} (${r.first_html_kb}) | ${r.first_requests} | ${r.first_ms} | ${r.repeat_kb} | ${r.repeat_requests} | ${r.repeat_ms} |`);
}
