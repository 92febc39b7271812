// Deployment checklists in the browser: a template written in the editor (a mistake shown
// with its line, the text kept), a deployment opened from the form, a metric item measured
// on a real Prometheus passing live on the page, a manual item checked with its note, the
// requester unable to sign, a second approver signing, and the CI gate turning allowed.
import { expect, test, type Browser, type Page } from "@playwright/test";
import { hydrated, signIn, signInAsAdmin, unique } from "./helpers";

const PROM = process.env.E2E_PROMETHEUS_URL ?? "";

async function person(browser: Browser, admin: Page, role: string) {
  const username = unique(`${role}-`);
  const r = await admin.request.post("/api/v1/users", {
    headers: { origin: new URL(admin.url()).origin },
    data: { username, role, password: "deploy-password-1" },
  });
  expect(r.status(), await r.text()).toBe(201);
  const page = await (await browser.newContext()).newPage();
  await signIn(page, username, "deploy-password-1");
  await expect(page.locator(".whoami .username")).toHaveText(username);
  return { page, username };
}

// Signed in as the admin: a Prometheus target on the run's Prometheus, and two approvers
// signed in in their own browsers.
async function release(page: Page, browser: Browser) {
  expect(PROM, "E2E_PROMETHEUS_URL is set by scripts/test").not.toBe("");
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const prom = unique("prom-");
  const t = await page.request.post("/api/v1/targets", {
    headers: { origin },
    data: { name: prom, kind: "prometheus", connection: PROM, environment: "staging" },
  });
  expect(t.status(), await t.text()).toBe(201);
  const alice = await person(browser, page, "approver");
  const bob = await person(browser, page, "approver");
  return { origin, prom, alice, bob };
}

test("a release from template to gate, with a metric item passing live", async ({ page, browser }) => {
  test.setTimeout(120_000);
  const { origin, prom, alice, bob } = await release(page, browser);

  // The editor: a mistake is shown with its line and column, the text stays.
  const id = unique("web-");
  const yaml = `id: ${id}
name: Web release ${id}
sections:
  pre:
    - id: tests-green
      kind: manual
      text: All tests pass
      requires_note: true
    - id: error-rate
      kind: metric
      text: Error rate below 0.1%
      target: prometheus
      query: max(lookout_e2e_error_ratio{service="{{service}}"})
      success: result < 0.001
      interval: 1s
      count: 3
  post:
    - id: smoke
      kind: manual
      text: Smoke test
    - id: error-rate-after
      kind: metric
      text: Error rate below 0.01% after the release
      target: prometheus
      query: max(lookout_e2e_error_ratio{service="{{service}}"})
      success: result < 0.0001
      interval: 1s
`;
  const a = alice.page;
  await a.goto("/deployments/templates/new");
  await hydrated(a);
  const editor = a.locator("#template-form textarea");
  await editor.fill(yaml.replace("text: Smoke test", "txt: Smoke test"));
  await a.locator("#template-form button[type=submit]").click();
  await expect(a.locator("#template-form + .enhance-msg")).toContainText("line 20, column 7");
  await expect(a.locator("#template-form + .enhance-msg")).toContainText("unknown field `txt`");
  await expect(editor).toHaveValue(/txt: Smoke test/);
  await editor.fill(yaml);
  await a.locator("#template-form button[type=submit]").click();
  await expect(a).toHaveURL(new RegExp(`/deployments/templates/${id}$`));
  await expect(a.locator("#what-it-checks")).toContainText("error-rate");
  await expect(a.locator("#bindings")).toContainText("prometheus");

  // The form: open a deployment from the template, binding its Prometheus.
  await a.getByRole("link", { name: "Open a deployment from it" }).click();
  await expect(a.locator("#preview")).toContainText("tests-green");
  await a.getByLabel("Service").fill("checkout");
  await a.getByLabel("Environment").fill("staging");
  await a.getByLabel("Version", { exact: true }).fill("3.0.0");
  await a.locator("textarea[name=targets]").fill(`prometheus: ${prom}`);
  await a.getByRole("button", { name: "Open deployment" }).click();
  await expect(a).toHaveURL(/\/deployments\/DEP-\d+$/);
  const key = new URL(a.url()).pathname.split("/").pop()!;
  await hydrated(a);
  await a.evaluate(() => ((window as any).__noReload = 1));

  // The metric item is measured on the real Prometheus and passes on the page, live.
  const metric = a.locator("tr[data-item=error-rate]");
  await expect(metric.locator(".badge.istate")).toHaveText("passed", { timeout: 30_000 });
  await expect(a.locator("tr[data-evidence=error-rate] figure.chart.measurements circle.m-successful")).toHaveCount(3);
  await expect(a.locator("tr[data-evidence=error-rate] .threshold")).toHaveCount(1);
  expect(await a.evaluate(() => (window as any).__noReload), "updated in place, not reloaded").toBe(1);

  // The manual item needs its note.
  const manual = a.locator("tr[data-item=tests-green]");
  await manual.getByLabel("Note").fill("build 812 green");
  await manual.getByRole("button", { name: "Check" }).click();
  await expect(manual.locator(".badge.istate")).toHaveText("checked");
  await a.getByRole("button", { name: "Submit for approval" }).click();
  await expect(a.locator("#deployment-status")).toHaveText("awaiting_approval");

  // The requester cannot sign: no button, and the API refuses.
  await expect(a.locator("#own-deployment")).toBeVisible();
  await expect(a.getByRole("button", { name: "Approve" })).toHaveCount(0);
  const own = await a.request.post(`/api/v1/deployments/${key}/approvals`, { headers: { origin }, data: { decision: "approve" } });
  expect([403, 409]).toContain(own.status());
  const gate1 = await (await a.request.get(`/api/v1/deployments/${key}/gate?phase=pre`)).json();
  expect(gate1.allowed).toBe(false);
  expect(gate1.blocking.join(" ")).toContain("0 of 1 approvals");

  // A second approver signs; the gate turns allowed.
  const b = bob.page;
  await b.goto(`/deployments/${key}`);
  await hydrated(b);
  await b.getByRole("button", { name: "Approve" }).click();
  await expect(b.locator("#deployment-status")).toHaveText("approved");
  await expect(b.locator("#approvals")).toContainText(bob.username);
  const gate2 = await (await b.request.get(`/api/v1/deployments/${key}/gate?phase=pre`)).json();
  expect(gate2.allowed).toBe(true);
  // The requester's page follows (it was live while awaiting approval).
  await expect(a.locator("#deployment-status")).toHaveText("approved", { timeout: 10_000 });

  // The pipeline starts; the release is verified; the post-deploy metric fails on the page,
  // and one click opens an incident linked both ways, the failed item as a finding.
  await b.getByRole("button", { name: "Start the deployment" }).click();
  await expect(b.locator("#deployment-status")).toHaveText("in_progress");
  await b.getByRole("button", { name: "Deployed: verify" }).click();
  await expect(b.locator("#deployment-status")).toHaveText("verifying");
  await expect(b.locator("tr[data-item=error-rate-after] .badge.istate")).toHaveText("failed", { timeout: 30_000 });
  await b.getByRole("button", { name: "Open an incident" }).click();
  await expect(b).toHaveURL(/\/incidents\/INC-\d+$/);
  await expect(b.locator("#findings")).toContainText("DEPLOY_ITEM_FAILED");
  await expect(b.locator(`#deployments-near [data-deployment=${key}]`)).toContainText("linked");
  await b.locator(`#deployments-near a[href="/deployments/${key}"]`).click();
  await expect(b.locator("#incidents a[href^='/incidents/INC-']")).toHaveCount(1);

  // The export is a download of the signed record.
  const [dl] = await Promise.all([b.waitForEvent("download"), b.getByRole("button", { name: "Export Markdown" }).click()]);
  expect(dl.suggestedFilename()).toBe(`${key}.md`);
});

test("the built-in Deployment checklist with chosen thresholds, from form to incident", async ({ page, browser }) => {
  test.setTimeout(150_000);
  const { origin, prom, alice, bob } = await release(page, browser);
  const a = alice.page;

  // The built-in template, marked as such, with its parameters and their defaults.
  await a.goto("/deployments/new?template=deployment-checklist");
  await hydrated(a);
  await expect(a.locator("#preview")).toContainText("Deployment checklist");
  await expect(a.locator("#template-parameters tr[data-param=max_error_percent]")).toContainText("0.1");
  await expect(a.locator("#preview li[data-item=error-rate]")).toContainText("Error rate <0.1% during rollout");
  // The service's traffic (scripts/lib/e2e_exporter.py) has 0.4975 % errors: this release
  // allows 1 %, measured every second.
  await a.getByLabel("Service").fill("shop");
  await a.getByLabel("Environment").fill("staging");
  await a.getByLabel("Version", { exact: true }).fill("5.1.0");
  await a.locator("textarea[name=targets]").fill(`prometheus: ${prom}`);
  await a.locator("input[name='parameters[max_error_percent]']").fill("1");
  await a.locator("input[name='parameters[check_interval]']").fill("1s");
  await a.getByRole("button", { name: "Open deployment" }).click();
  await expect(a).toHaveURL(/\/deployments\/DEP-\d+$/);
  const key = new URL(a.url()).pathname.split("/").pop()!;
  await hydrated(a);
  await expect(a.locator("#parameters")).toContainText("max_error_percent = 1");
  await expect(a.locator("tr[data-item=error-rate]")).toContainText("Error rate <1% during rollout");

  // Every manual pre-deploy item checked in the browser, with a note.
  for (const id of ["code-review", "tests-pass", "staging-ok", "migrations-tested", "kafka-topics", "redis-keys"]) {
    const row = a.locator(`tr[data-item=${id}]`);
    await row.getByLabel("Note").fill(`${id}: done`);
    await row.getByRole("button", { name: "Check" }).click();
    await expect(row.locator(".badge.istate")).toHaveText("checked");
  }
  await a.getByRole("button", { name: "Submit for approval" }).click();
  await expect(a.locator("#deployment-status")).toHaveText("awaiting_approval");
  await expect(a.getByRole("button", { name: "Approve" })).toHaveCount(0);
  const own = await a.request.post(`/api/v1/deployments/${key}/approvals`, { headers: { origin }, data: { decision: "approve" } });
  expect([403, 409]).toContain(own.status());

  // The second approver signs; the gate opens; the rollout starts.
  const b = bob.page;
  await b.goto(`/deployments/${key}`);
  await hydrated(b);
  await b.getByRole("button", { name: "Approve" }).click();
  await expect(b.locator("#deployment-status")).toHaveText("approved");
  const gate = await (await b.request.get(`/api/v1/deployments/${key}/gate?phase=pre`)).json();
  expect(gate.allowed).toBe(true);
  await b.getByRole("button", { name: "Start the deployment" }).click();
  await expect(b.locator("#deployment-status")).toHaveText("in_progress");
  await b.evaluate(() => ((window as any).__noReload = 1));

  // The error-rate and latency items are measured on the real Prometheus and pass live.
  for (const id of ["health-checks", "traffic-shift"]) {
    const row = b.locator(`tr[data-item=${id}]`);
    await row.getByLabel("Note").fill("watched it");
    await row.getByRole("button", { name: "Check" }).click();
    await expect(row.locator(".badge.istate")).toHaveText("checked");
  }
  await expect(b.locator("tr[data-item=error-rate] .badge.istate")).toHaveText("passed", { timeout: 40_000 });
  await expect(b.locator("tr[data-item=latency-p99] .badge.istate")).toHaveText("passed", { timeout: 20_000 });
  await expect(b.locator("tr[data-evidence=error-rate] figure.chart.measurements circle.m-successful")).toHaveCount(10);
  expect(await b.evaluate(() => (window as any).__noReload), "updated in place, not reloaded").toBe(1);

  // After the deploy, one of shop's instances does not answer: the health item fails, and
  // one click opens an incident with it as a finding.
  await b.getByRole("button", { name: "Deployed: verify" }).click();
  await expect(b.locator("#deployment-status")).toHaveText("verifying");
  await expect(b.locator("tr[data-item=endpoints] .badge.istate")).toHaveText("failed", { timeout: 30_000 });
  await b.getByRole("button", { name: "Open an incident" }).click();
  await expect(b).toHaveURL(/\/incidents\/INC-\d+$/);
  await expect(b.locator("#findings")).toContainText("DEPLOY_ITEM_FAILED");
  await expect(b.locator("#findings")).toContainText("Service endpoints responding");
  await expect(b.locator(`#deployments-near [data-deployment=${key}]`)).toContainText("linked");
});
