// Working an incident as a team would: open it, move it along, write notes that others see
// live, judge findings, export the postmortem — and no markup in a note can run.
import { expect, test } from "@playwright/test";
import { ADMIN_PASSWORD, hydrated, signIn, signInAsAdmin, unique } from "./helpers";

test("create an incident, work it with a teammate watching live, export the postmortem", async ({ page, browser }) => {
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;

  // A second person, in their own browser context.
  const mate = unique("mate");
  const res = await page.request.post("/api/v1/users", {
    headers: { origin },
    data: { username: mate, role: "responder", password: "teammate-password" },
  });
  expect(res.status()).toBe(201);

  await page.goto("/incidents/new");
  await hydrated(page);
  const title = unique("Checkout 500s ");
  const form = page.locator("#new-incident-form");
  await form.getByLabel("Title").fill(title);
  await form.getByLabel("Severity").selectOption("SEV2");
  await form.getByLabel(/Affected services/).fill("checkout, payments");
  await form.getByLabel("Summary (markdown)").fill("Customers cannot pay.");
  await form.getByRole("button", { name: "Open incident" }).click();
  await expect(page).toHaveURL(/\/incidents\/INC-\d+$/);
  const key = page.url().split("/").pop()!;
  await expect(page.getByRole("heading", { level: 1, name: title })).toBeVisible();
  await expect(page.locator("#incident-status")).toHaveText("triage");

  // Change status.
  await hydrated(page);
  await page.locator("#status-form select[name=status]").selectOption("investigating");
  await page.locator("#status-form").getByRole("button", { name: "Change status" }).click();
  await expect(page.locator("#incident-status")).toHaveText("investigating");
  await expect(page.locator("#events")).toContainText("Status triage → investigating");

  // The teammate opens the same incident.
  const ctx2 = await browser.newContext();
  const p2 = await ctx2.newPage();
  await signIn(p2, mate, "teammate-password");
  await expect(p2.locator(".whoami .username")).toHaveText(mate);
  await p2.goto(`/incidents/${key}`);
  await hydrated(p2);
  await p2.evaluate(() => ((window as any).__noReload = 1));
  await p2.waitForTimeout(300); // the live stream connects

  // A note written in the first browser appears in the second within 2 s, without a reload.
  const noteText = unique("Redis orders-cache at 98% ");
  await page.locator("#note-body").fill(noteText);
  await page.locator("#note-form").getByRole("button", { name: "Add note" }).click();
  await expect(page.locator("#events")).toContainText(noteText);
  await expect(p2.locator("#events")).toContainText(noteText, { timeout: 2_000 });
  expect(await p2.evaluate(() => (window as any).__noReload)).toBe(1);

  // A finding, marked false positive with a reason.
  await page.locator("summary", { hasText: "Add a finding by hand" }).click();
  const ff = page.locator("#finding-form");
  await ff.getByLabel("Code", { exact: true }).fill("REDIS_NOEVICTION_NEAR_LIMIT");
  await ff.locator("select[name=severity]").selectOption("critical");
  await ff.getByLabel("Title", { exact: true }).fill("orders-cache near maxmemory with noeviction");
  await ff.getByLabel(/Evidence/).fill("used_memory: 1.96 GB\nmaxmemory: 2 GB");
  await ff.getByLabel(/Remediation/).fill("```sh\nredis-cli CONFIG SET maxmemory-policy allkeys-lru\n```");
  await ff.getByRole("button", { name: "Add finding" }).click();
  const card = page.locator("article.finding").filter({ hasText: "REDIS_NOEVICTION_NEAR_LIMIT" });
  await expect(card).toBeVisible();
  // The incident lists findings as one-line summaries; the evidence, the remediation (with
  // its copyable command) and the status controls are on the finding's own page.
  await expect(card.locator("table.evidence")).toHaveCount(0);
  const detail = await card.getByRole("link", { name: "REDIS_NOEVICTION_NEAR_LIMIT" }).getAttribute("href");
  expect(detail).toMatch(/^\/incidents\/INC-\d+\/findings\/\d+$/);
  await expect(p2.locator("article.finding")).toContainText("REDIS_NOEVICTION_NEAR_LIMIT", { timeout: 2_000 });
  const p3 = await page.context().newPage();
  await p3.goto(detail!);
  await hydrated(p3);
  await expect(p3.locator("table.evidence")).toContainText("1.96 GB");
  await expect(p3.locator("button.copy")).toHaveAttribute("data-copy", "redis-cli CONFIG SET maxmemory-policy allkeys-lru");
  const full = p3.locator("article.finding");
  await full.locator("summary", { hasText: "False positive" }).click();
  await full.getByLabel("Reason").fill("maxmemory was raised at 14:00");
  await full.getByRole("button", { name: "Mark false positive" }).click();
  await expect(full.locator(".fstatus")).toHaveText("false_positive");
  await expect(full).toContainText("Reason: maxmemory was raised at 14:00");
  await p3.close();
  // The incident page (and the teammate's) follow.
  await expect(page.locator("article.finding .fstatus")).toHaveText("false_positive", { timeout: 5_000 });
  await expect(p2.locator("article.finding")).toContainText("Reason: maxmemory was raised at 14:00", { timeout: 5_000 });

  // Export: a download of Markdown, and the export is on the timeline.
  const downloadPromise = page.waitForEvent("download");
  await page.locator("#postmortem-download").click();
  const download = await downloadPromise;
  expect(download.suggestedFilename()).toBe(`postmortem-${key}.md`);
  const fs = await import("node:fs/promises");
  const md = await fs.readFile(await download.path(), "utf8");
  for (const part of [`# Postmortem: ${key} — ${title}`, "## Impact", "## Timeline", noteText, "## Findings",
                      "false_positive (maxmemory was raised at 14:00)", "## Action items"]) {
    expect(md).toContain(part);
  }
  await expect(p2.locator("#events")).toContainText("Postmortem exported", { timeout: 2_000 });
  await ctx2.close();
});

test("markup in notes and findings never runs", async ({ page }) => {
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const r = await page.request.post("/api/v1/incidents", {
    headers: { origin },
    data: { title: "xss check", severity: "SEV4", services: ["web"], environment: "staging" },
  });
  const key = (await r.json()).key;
  const evil = `hello <script>window.__xss = 1</script> <img src=x onerror="window.__xss = 2"> [link](javascript:window.__xss=3) <a href="javascript:window.__xss=4" id="evil-a">a</a> <b onmouseover="window.__xss=5" id="evil-b">b</b>`;
  expect((await page.request.post(`/api/v1/incidents/${key}/notes`, { headers: { origin }, data: { body: evil } })).status()).toBe(201);
  expect((await page.request.post(`/api/v1/incidents/${key}/findings`, {
    headers: { origin },
    data: { code: "XSS_CHECK", severity: "info", title: "<img src=x onerror=window.__xss=6>", remediation: evil },
  })).status()).toBe(201);
  await page.goto(`/incidents/${key}`);
  await hydrated(page);
  await expect(page.locator("#events")).toContainText("hello");
  await page.locator("#events a", { hasText: "link" }).click().catch(() => {});
  await page.locator("#events b", { hasText: "b" }).first().hover().catch(() => {});
  await page.waitForTimeout(300);
  expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
  expect(await page.locator("#events script, #findings script").count()).toBe(0);
  expect(await page.locator("[onerror], [onmouseover]").count()).toBe(0);
  expect(await page.locator('a[href^="javascript:"]').count()).toBe(0);
  // The finding's own page (its remediation) is as inert.
  await page.locator("#findings article.finding").getByRole("link", { name: "XSS_CHECK" }).click();
  await expect(page.locator(".remediation")).toContainText("hello");
  await page.locator(".remediation a", { hasText: "link" }).click().catch(() => {});
  await page.waitForTimeout(300);
  expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
  expect(await page.locator(".finding script, [onerror], [onmouseover], a[href^='javascript:']").count()).toBe(0);
  await page.goBack();
  await hydrated(page);
  // The preview renders the same sanitized HTML.
  await page.locator("#note-body").fill(evil);
  await page.locator("#note-preview").click();
  await expect(page.locator("#note-preview-html")).toContainText("hello");
  expect(await page.locator("#note-preview-html script, #note-preview-html [onerror]").count()).toBe(0);
  expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
});
