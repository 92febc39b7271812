// The Prometheus probe end to end (issue 16): a responder runs it from an incident against
// the real Prometheus of the TEST command, which scrapes a real Node.js service
// (end2end/fixtures/service.js as job `checkout`: 25 % errors, 300 ms requests, memory
// growing, an open opossum breaker). The findings land on the incident; the run page draws
// each finding's series as an SVG chart with labelled axes.
import { expect, test } from "@playwright/test";
import { hydrated, signInAsAdmin, unique } from "./helpers";

test("a responder runs the Prometheus probe from an incident and sees charts of the evidence", async ({ page }) => {
  test.setTimeout(120_000);
  const promUrl = process.env.E2E_PROMETHEUS_URL;
  expect(promUrl, "E2E_PROMETHEUS_URL is set by scripts/test").toBeTruthy();
  // The window is 30 s: wait until Prometheus holds that much of the service.
  await expect
    .poll(
      async () => {
        const r = await page.request.get(`${promUrl}/api/v1/query`, {
          params: { query: 'count_over_time(up{job="checkout"}[30s])' },
        });
        const v = (await r.json()).data.result[0]?.value?.[1];
        return Number(v ?? 0);
      },
      { timeout: 45_000, intervals: [1_000] },
    )
    .toBeGreaterThanOrEqual(25);
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const name = unique("metrics-");
  const t = await page.request.post("/api/v1/targets", {
    headers: { origin },
    data: { name, kind: "prometheus", connection: promUrl, environment: "production" },
  });
  expect(t.status()).toBe(201);
  const inc = await page.request.post("/api/v1/incidents", {
    headers: { origin },
    data: { title: unique("Checkout failing "), severity: "SEV2", services: ["checkout"], environment: "production" },
  });
  expect(inc.status()).toBe(201);
  const key = (await inc.json()).key;

  await page.goto(`/incidents/${key}`);
  await hydrated(page);
  const panel = page.locator("#probe-runs");
  const rf = panel.locator("#run-probe-form");
  await rf.locator("select[name=choice]").selectOption({ label: `${name} — Service metrics (memory, errors, latency, breakers) (production)` });
  await rf.locator("details.params[data-probe=prometheus] summary").click();
  await rf.locator('input[name="params[prometheus.selector]"]').fill('job="checkout"');
  await rf.locator('input[name="params[prometheus.window]"]').fill("30s");
  await rf.getByRole("button", { name: "Run probe" }).click();
  const run = panel.locator(".run").first();
  await expect(run).toHaveAttribute("data-status", "ok", { timeout: 30_000 });

  const findings = page.locator("#findings");
  for (const code of ["PROM_SUMMARY", "PROM_ERROR_RATE", "PROM_BREAKER_OPEN", "PROM_MEMORY_GROWTH"]) {
    await expect(findings).toContainText(code, { timeout: 5_000 });
  }

  // The run's page: every finding card, its PromQL and its chart.
  const runId = (await run.getAttribute("id"))!.replace(/\D/g, "");
  await page.goto(`/probe-runs/${runId}`);
  const err = page.locator("article.finding").filter({ hasText: "PROM_ERROR_RATE" });
  await expect(err.locator(".command")).toContainText('http_request_duration_seconds_count{job="checkout"');
  const chart = err.locator("figure.evidence-chart");
  await expect(chart.locator("svg polyline")).toHaveCount(1);
  await expect(chart.locator("svg text.tick").first()).toBeVisible();
  await expect(chart.locator("svg")).toContainText("%");
  await expect(chart.locator("svg")).toContainText("end");
  await expect(chart.locator("time")).toHaveCount(2);
  // One click turns the finding's condition into a checklist item of a template: the
  // template's next version, shown as a diff that is the item.
  const tid = unique("gate-").toLowerCase().replace(/[^a-z0-9-]/g, "-");
  const tpl = await page.request.post("/api/v1/deployment-templates", {
    headers: { origin, "content-type": "application/yaml" },
    data: `id: ${tid}\nname: Checkout gate\nsections:\n  post:\n    - id: smoke\n      kind: manual\n      text: Smoke test\n`,
  });
  expect(tpl.status(), await tpl.text()).toBe(201);
  await page.reload();
  await hydrated(page);
  const add = err.locator("form.add-item");
  await add.locator("select[name=template_id]").selectOption(tid);
  await add.getByRole("button", { name: "Add to checklist" }).click();
  await expect(page).toHaveURL(new RegExp(`/deployments/templates/${tid}\\?version=2&against=1`));
  const diff = page.locator("#diff");
  await expect(diff).toContainText("Changes from v1 to v2");
  await expect(diff.locator("span.add").first()).toContainText("- id: error-ratio-checkout");
  await expect(diff.locator("span.del")).toHaveCount(0);
  await page.goto(`/probe-runs/${runId}`);
  const mem = page.locator("article.finding").filter({ hasText: "PROM_MEMORY_GROWTH" });
  await expect(mem.locator("figure.evidence-chart svg")).toContainText("MiB");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.screenshot({ path: "test-results/prometheus-run-1280.png", fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: "test-results/prometheus-run-390.png", fullPage: true });
  // Nothing overflows the narrow screen sideways.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(1);
});
