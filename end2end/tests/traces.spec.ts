// The trace breakdown probe end to end (issue 16): a responder runs it from an incident
// against the real Jaeger of the TEST command, which holds traces the OpenTelemetry SDK sent
// (scripts/lib/trace_shapes.py: checkout's 1,000 ms request — database 20 %, LLM 40 %,
// outbound 20 %, own code 20 %, an N+1 and a retry). The breakdown lands on the incident and
// reads on the run page.
import { expect, test } from "@playwright/test";
import { hydrated, signInAsAdmin, unique } from "./helpers";

test("a responder breaks a slow trace down from an incident", async ({ page }) => {
  const jaeger = process.env.E2E_JAEGER_URL;
  const ids = JSON.parse(process.env.E2E_TRACE_IDS ?? "{}");
  expect(jaeger, "E2E_JAEGER_URL is set by scripts/test").toBeTruthy();
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const name = unique("traces-");
  const t = await page.request.post("/api/v1/targets", {
    headers: { origin },
    data: { name, kind: "traces", connection: `jaeger+${jaeger}`, environment: "production" },
  });
  expect(t.status()).toBe(201);
  const inc = await page.request.post("/api/v1/incidents", {
    headers: { origin },
    data: { title: unique("Checkout slow "), severity: "SEV2", services: ["checkout"], environment: "production" },
  });
  expect(inc.status()).toBe(201);
  const key = (await inc.json()).key;

  await page.goto(`/incidents/${key}`);
  await hydrated(page);
  const rf = page.locator("#probe-runs #run-probe-form");
  await rf.locator("select[name=choice]").selectOption({ label: `${name} — Trace breakdown (where a slow request spent its time) (production)` });
  await rf.locator("details.params[data-probe=traces] summary").click();
  await rf.locator('input[name="params[traces.trace_id]"]').fill(ids.checkout);
  await rf.getByRole("button", { name: "Run probe" }).click();
  const run = page.locator("#probe-runs .run").first();
  await expect(run).toHaveAttribute("data-status", "ok", { timeout: 30_000 });
  const findings = page.locator("#findings");
  for (const code of ["TRACE_BREAKDOWN", "TRACE_N_PLUS_ONE", "TRACE_RETRIES"]) {
    await expect(findings).toContainText(code, { timeout: 5_000 });
  }
  await expect(findings).toContainText("LLM 40.0 %");

  const runId = (await run.getAttribute("id"))!.replace(/\D/g, "");
  await page.goto(`/probe-runs/${runId}`);
  const b = page.locator("article.finding").filter({ hasText: "TRACE_BREAKDOWN" });
  const cats = b.locator("table").filter({ hasText: "share of the request" });
  for (const [cat, share] of [["LLM", "40.0 %"], ["database", "20.0 %"], ["outbound HTTP/gRPC", "20.0 %"], ["own code", "20.0 %"]]) {
    await expect(cats.locator("tr").filter({ hasText: cat })).toContainText(share);
  }
  await expect(b.locator("table").filter({ hasText: "self time" })).toContainText("chat gpt-4o");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.screenshot({ path: "test-results/traces-run-1280.png", fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: "test-results/traces-run-390.png", fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(1);
});
