// Probes end to end: an admin adds a Redis target (the real Redis the TEST command
// started), a responder runs the Redis probe from an incident, watches its progress live,
// and sees its findings land on the incident — without reloading the page.
import { expect, test } from "@playwright/test";
import { hydrated, signIn, signInAsAdmin, unique } from "./helpers";

test("admin adds a Redis target; a responder probes it from an incident", async ({ page, browser }) => {
  const redisUrl = process.env.REDIS_URL;
  expect(redisUrl, "REDIS_URL is set by scripts/test").toBeTruthy();
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const responder = unique("resp");
  const res = await page.request.post("/api/v1/users", {
    headers: { origin },
    data: { username: responder, role: "responder", password: "responder-password" },
  });
  expect(res.status()).toBe(201);

  // The admin adds the target and tests the connection.
  await page.goto("/targets");
  await hydrated(page);
  const name = unique("orders-cache-");
  const form = page.locator("#create-target-form");
  await form.locator("input[name=name]").fill(name);
  await form.locator("select[name=kind]").selectOption("redis");
  await form.locator("input[name=connection]").fill(`${redisUrl}/0`);
  await form.locator("input[name=environment]").fill("staging");
  await form.getByRole("button", { name: "Add target" }).click();
  await expect(page.getByText(`Added ${name} (redis).`)).toBeVisible();
  const row = page.locator(`tr[data-target="${name}"]`);
  await expect(row).toContainText("never");
  await row.getByRole("button", { name: "Test connection" }).click();
  await expect(page.locator("#test-result")).toContainText("Connected: redis 7");

  // The responder opens an incident and runs the probe from it.
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await signIn(p, responder, "responder-password");
  await expect(p.locator(".whoami .username")).toHaveText(responder);
  await p.goto("/incidents/new");
  await hydrated(p);
  const nf = p.locator("#new-incident-form");
  await nf.getByLabel("Title").fill(unique("Orders API slow "));
  await nf.getByLabel(/Affected services/).fill("orders");
  await nf.getByRole("button", { name: "Open incident" }).click();
  await expect(p).toHaveURL(/\/incidents\/INC-\d+$/);
  await hydrated(p);
  await p.evaluate(() => ((window as any).__noReload = 1));

  const panel = p.locator("#probe-runs");
  const rf = panel.locator("#run-probe-form");
  await expect(rf).toBeVisible();
  await rf.locator("select[name=choice]").selectOption({ label: `${name} — Redis health (staging)` });
  await rf.locator("details.params[data-probe=redis] summary").click();
  // A longer rate window, so the progress can be watched.
  await rf.locator('input[name="params[redis.rate_interval_s]"]').fill("4");
  await rf.getByRole("button", { name: "Run probe" }).click();

  const run = panel.locator(".run").first();
  await expect(run).toHaveAttribute("data-status", "running", { timeout: 5_000 });
  const runId = await run.getAttribute("id");
  await expect(run.locator("[data-testid=run-step]")).toContainText("Second INFO sample", { timeout: 5_000 });
  await expect(run.locator("[data-testid=run-step]")).toContainText(/\d of 8 steps/);
  await expect(run.locator("li.step-done").first()).toBeVisible();
  // The panel stays after the run ends (the incident re-renders around it).
  const done = panel.locator(`#${runId}`);
  await expect(done).toHaveAttribute("data-status", "ok", { timeout: 20_000 });
  await expect(done.locator(".run-summary")).toContainText(/\d+ findings?: /);

  // The findings are on the incident, attributed to the probe and target; the timeline
  // has the run's start and end.
  const findings = p.locator("#findings");
  await expect(findings).toContainText("REDIS_SUMMARY", { timeout: 5_000 });
  await expect(findings).toContainText(`probe redis on ${name}`);
  await expect(findings).toContainText("REDIS_NO_MAXMEMORY");
  // Its evidence is on the finding's own page.
  const summary = findings.locator("article.finding").filter({ hasText: "REDIS_SUMMARY" });
  const detail = await summary.getByRole("link", { name: "REDIS_SUMMARY" }).getAttribute("href");
  const pd = await p.context().newPage();
  await pd.goto(detail!);
  await expect(pd.locator("table.evidence").first()).toContainText("maxmemory_policy");
  await pd.close();
  await expect(p.locator("#events")).toContainText(`redis probe started on ${name}`);
  await expect(p.locator("#events")).toContainText(`redis probe on ${name} ok in`);
  expect(await p.evaluate(() => (window as any).__noReload)).toBe(1);

  // The run has its own page, and the target list shows it as the last probe.
  await p.goto("/targets");
  await expect(p.locator(`tr[data-target="${name}"] td.last-run`)).toContainText("ok");
  await p.locator(`tr[data-target="${name}"] td.last-run a`).click();
  await expect(p.getByRole("heading", { level: 1 })).toContainText(`redis on ${name}`);
  await expect(p.locator(".run")).toHaveAttribute("data-status", "ok");
  await ctx.close();
});

test("without JavaScript a probe still runs and its page refreshes until done", async ({ browser }) => {
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const name = unique("nojs-cache-");
  const r = await page.request.post("/api/v1/targets", {
    headers: { origin },
    data: { name, kind: "redis", connection: `${process.env.REDIS_URL}/0`, environment: "test" },
  });
  expect(r.status()).toBe(201);
  const id = (await r.json()).id;
  await page.goto(`/targets/${id}`);
  await page.locator("#run-probe-form").getByRole("button", { name: "Run probe" }).click();
  // The plain form post comes back to the page; the newest run is in the history.
  await page.goto(`/targets/${id}`);
  const link = page.locator("#run-history a").first();
  await link.click();
  await expect(page.locator(".run")).toHaveAttribute("data-status", "ok", { timeout: 20_000 });
  await expect(page.locator(".run-findings")).toContainText("REDIS_SUMMARY");
  await ctx.close();
});
