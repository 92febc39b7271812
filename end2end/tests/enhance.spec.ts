// What the one island (app/src/components/enhance.rs) adds to the server-rendered pages:
// live re-rendering that never clobbers what the viewer is typing, times in the viewer's
// zone, sortable tables, copy buttons, and the probe form following the probe chosen.
import { expect, test, type Page } from "@playwright/test";
import { hydrated, signIn, signInAsAdmin, unique, ADMIN_PASSWORD } from "./helpers";

async function api(page: Page) {
  const origin = new URL(page.url()).origin;
  return async (url: string, data: unknown) => {
    const r = await page.request.post(url, { headers: { origin }, data });
    expect(r.status(), `${url}: ${await r.text()}`).toBeLessThan(300);
    return r.json();
  };
}

test("live changes wait while the viewer types, then arrive without losing the draft", async ({ page }) => {
  await signInAsAdmin(page);
  const post = await api(page);
  const key = (await post("/api/v1/incidents", { title: unique("Live "), severity: "SEV3", services: ["web"], environment: "staging" })).key;
  await page.goto(`/incidents/${key}`);
  await hydrated(page);
  await page.evaluate(() => ((window as any).__noReload = 1));

  // An open panel and a half-written note.
  await page.locator("summary", { hasText: "Add a finding by hand" }).click();
  await page.locator("#note-body").fill("half-written note");
  await expect(page.locator("#note-body")).toBeFocused();

  // A teammate writes a note: the page does not change under the viewer's hands …
  const theirs = unique("teammate note ");
  await post(`/api/v1/incidents/${key}/notes`, { body: theirs });
  await page.waitForTimeout(1500);
  await expect(page.locator("#events")).not.toContainText(theirs);

  // … and once the viewer leaves the field, it does: the draft and the open panel stay.
  await page.locator("h1").click();
  await expect(page.locator("#events")).toContainText(theirs, { timeout: 5_000 });
  await expect(page.locator("#note-body")).toHaveValue("half-written note");
  await expect(page.locator("details", { has: page.locator("summary", { hasText: "Add a finding by hand" }) })).toHaveAttribute("open", "");
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(1);

  // Sending the draft re-renders the page with it, and empties the composer.
  await page.locator("#note-form").getByRole("button", { name: "Add note" }).click();
  await expect(page.locator("#events")).toContainText("half-written note");
  await expect(page.locator("#note-body")).toHaveValue("");
});

test("times show in the viewer's zone, tables sort by value, copy buttons copy", async ({ browser }) => {
  const ctx = await browser.newContext({ timezoneId: "Asia/Kolkata", permissions: ["clipboard-read", "clipboard-write"] });
  const page = await ctx.newPage();
  await signIn(page, "admin", ADMIN_PASSWORD);
  await expect(page.locator(".whoami .username")).toHaveText("admin");
  const post = await api(page);
  const key = (await post("/api/v1/incidents", { title: unique("Zones "), severity: "SEV4", services: ["web"], environment: "staging" })).key;
  const f = await post(`/api/v1/incidents/${key}/findings`, {
    code: "BIG_KEYS",
    severity: "warning",
    title: "Big keys",
    evidence: { tables: [{ title: "Keys by size", columns: ["key", "size"], rows: [["a", "1.5 MiB"], ["b", "900 KiB"], ["c", "2 GiB"]] }] },
    remediation: "```sh\nredis-cli --bigkeys\n```",
  });
  await page.goto(`/incidents/${key}/findings/${f.id}`);
  await hydrated(page);

  const t = page.locator(`#finding-${f.id} time`).first();
  await expect(t).toHaveText(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(UTC\+5:30\)$/);
  await expect(t).toHaveAttribute("title", /UTC$/);

  const table = page.locator("table.sortable");
  const firstKey = () => table.locator("tbody tr").first().locator("td").first();
  await expect(firstKey()).toHaveText("a");
  await table.getByRole("button", { name: "size" }).click();
  await expect(firstKey()).toHaveText("b"); // 900 KiB < 1.5 MiB < 2 GiB
  await expect(table.locator("th").nth(1)).toHaveAttribute("aria-sort", "ascending");
  await table.getByRole("button", { name: "size" }).click();
  await expect(firstKey()).toHaveText("c");
  await expect(table.locator("th").nth(1)).toHaveAttribute("aria-sort", "descending");

  await page.locator(".cmd").getByRole("button", { name: "Copy" }).click();
  await expect(page.locator(".cmd").getByRole("button", { name: "Copied" })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe("redis-cli --bigkeys");
  await ctx.close();
});

test("the probe form shows the parameters of the probe chosen", async ({ page }) => {
  await signInAsAdmin(page);
  const post = await api(page);
  const redis = unique("cache-");
  const kafka = unique("bus-");
  await post("/api/v1/targets", { name: redis, kind: "redis", connection: `${process.env.REDIS_URL}/0`, environment: "staging" });
  await post("/api/v1/targets", { name: kafka, kind: "kafka", connection: "127.0.0.1:9", environment: "staging" });
  const key = (await post("/api/v1/incidents", { title: unique("Choice "), severity: "SEV4", services: ["web"], environment: "staging" })).key;
  await page.goto(`/incidents/${key}`);
  await hydrated(page);
  const form = page.locator("#run-probe-form");
  await form.locator("select[name=choice]").selectOption({ label: `${kafka} — Kafka consumer lag (staging)` });
  await expect(form.locator("details.params[data-probe=kafka-lag]")).toBeVisible();
  await expect(form.locator("details.params[data-probe=redis]")).toBeHidden();
  await form.locator("select[name=choice]").selectOption({ label: `${redis} — Redis health (staging)` });
  await expect(form.locator("details.params[data-probe=redis]")).toBeVisible();
  await expect(form.locator("details.params[data-probe=kafka-lag]")).toBeHidden();
});
