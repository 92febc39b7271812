// The weekly LLM cost review in the browser: a generated week pair ingested over OTLP/HTTP
// with an ingest token, the review explaining the change, a drill-down from service to
// feature, the CSV export, and the reviewer's note with the week marked reviewed.
import { expect, test, type APIRequestContext } from "@playwright/test";
import { hydrated, signInAsAdmin, unique } from "./helpers";

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const y = t.getUTCFullYear();
  const w = Math.ceil(((t.getTime() - Date.UTC(y, 0, 1)) / 86_400_000 + 1) / 7);
  return `${y}-W${String(w).padStart(2, "0")}`;
}

function hex(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

function call(at: Date, model: string, feature: string, input: number, cached: number, output: number) {
  const ns = (BigInt(at.getTime()) * 1_000_000n).toString();
  const attr = (key: string, v: string | number) => ({
    key,
    value: typeof v === "number" ? { intValue: String(v) } : { stringValue: v },
  });
  return {
    traceId: hex(32),
    spanId: hex(16),
    name: `chat ${model}`,
    kind: 3,
    startTimeUnixNano: ns,
    endTimeUnixNano: ns,
    attributes: [
      attr("gen_ai.operation.name", "chat"),
      attr("gen_ai.provider.name", "openai"),
      attr("gen_ai.request.model", model),
      attr("gen_ai.response.model", model),
      attr("gen_ai.usage.input_tokens", input),
      attr("gen_ai.usage.cache_read.input_tokens", cached),
      attr("gen_ai.usage.output_tokens", output),
      attr("app.feature", feature),
    ],
  };
}

async function send(request: APIRequestContext, token: string, service: string, spans: object[]) {
  const r = await request.post("/v1/traces", {
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    data: {
      resourceSpans: [
        { resource: { attributes: [{ key: "service.name", value: { stringValue: service } }] }, scopeSpans: [{ spans }] },
      ],
    },
  });
  expect(r.status(), await r.text()).toBe(200);
}

test("a week's LLM costs reviewed: explained, drilled into, exported, signed off", async ({ page }) => {
  test.setTimeout(90_000);
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const t = await page.request.post("/api/v1/tokens", {
    headers: { origin },
    data: { name: unique("collector-"), scope: "ingest" },
  });
  expect(t.status(), await t.text()).toBe(201);
  const token = (await t.json()).secret as string;

  // The last complete week (Monday 00:00 UTC) and the one before.
  const now = new Date();
  const monday = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  monday.setUTCDate(monday.getUTCDate() - ((monday.getUTCDay() + 6) % 7) - 7);
  const week = isoWeek(monday);
  const at = (days: number, hour: number) => new Date(monday.getTime() + days * 86_400_000 + hour * 3_600_000);
  const service = unique("assistant-");
  // Last week: 10 calls of gpt-4.1-mini for search. This week: 15 of them, and 5 of gpt-4.1
  // for a new summary feature.
  const prev = Array.from({ length: 10 }, (_, i) => call(at(-7 + (i % 7), 9), "gpt-4.1-mini", "search", 2000, 500, 200));
  const cur = [
    ...Array.from({ length: 15 }, (_, i) => call(at(i % 7, 9), "gpt-4.1-mini", "search", 2000, 500, 200)),
    ...Array.from({ length: 5 }, (_, i) => call(at(i, 11), "gpt-4.1", "summary", 3000, 0, 400)),
  ];
  await send(page.request, token, service, prev);
  await send(page.request, token, service, cur);

  // The review of that week for the service: the change explained.
  await page.goto(`/costs?week=${week}&by=service&service=${service}`);
  await hydrated(page);
  await expect(page.locator("h1")).toHaveText("LLM costs");
  const sentence = page.locator(".explain .sentence");
  await expect(sentence).toContainText("volume (calls 10 → 20, +100%)");
  await expect(sentence).toContainText("mix (gpt-4.1 share 0% → 25%)");
  await expect(page.locator("table.effects")).toContainText(service);
  await expect(page.locator(".barchart")).toBeVisible();
  // The most expensive trace, to its calls.
  await page.locator("table.top-traces a").first().click();
  await expect(page.locator("h1")).toContainText("LLM calls of trace");
  await expect(page.locator("table.trace-calls")).toContainText("openai gpt-4.1");

  // Drill down: the service → its features.
  await page.goto(`/costs?week=${week}&by=service`);
  await hydrated(page);
  await page.locator(".drill a", { hasText: service }).click();
  await expect(page).toHaveURL(new RegExp(`by=feature.*service=${service}`));
  const table = page.locator("table.sortable");
  await expect(table).toContainText("search");
  await expect(table).toContainText("summary");

  // The CSV export: every bucket, the price version.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: /^CSV/ }).click(),
  ]);
  expect(download.suggestedFilename()).toBe(`lookout-llm-costs-${week}-by-feature.csv`);
  const csv = await (await download.createReadStream()).toArray();
  const text = Buffer.concat(csv).toString("utf8");
  expect(text.split("\n")[0]).toContain("cache_read_tokens,cache_write_5m_tokens,cache_write_1h_tokens,output_tokens,reasoning_tokens,cost_usd");
  expect(text).toContain(`"${week}","summary","gpt-4.1"`);

  // The reviewer's note, and the week marked reviewed.
  const note = `Summary launched on gpt-4.1 (${unique("n")}); keep an eye on its share.`;
  await page.getByLabel("Notes on the week").fill(note);
  await page.getByLabel("The week is reviewed").check();
  await page.getByRole("button", { name: "Save the review" }).click();
  await expect(page.locator(".review-record .status")).toContainText("Reviewed by admin");
  await page.reload();
  await expect(page.getByLabel("Notes on the week")).toHaveValue(note);
  await expect(page.getByLabel("The week is reviewed")).toBeChecked();

  // A monthly budget for the service, from the page.
  await hydrated(page);
  await page.locator("#budgets summary").click();
  await page.locator("#budget-form select[name=scope]").selectOption("service");
  await page.locator("#budget-form input[name=name]").fill(service);
  await page.locator("#budget-form select[name=period]").selectOption("month");
  await page.locator("#budget-form input[name=amount]").fill("250");
  await page.locator("#budget-form button[type=submit]").click();
  await expect(page.locator("#budgets table")).toContainText(service);
  await expect(page.locator("#budgets table")).toContainText("$250.00");
});

test("the price book: a change previewed, then applied; a row edited from its link", async ({ page }) => {
  test.setTimeout(60_000);
  await signInAsAdmin(page);
  const model = unique("acme-llm-");
  await page.goto("/costs/prices");
  await hydrated(page);
  await expect(page.locator("h1")).toHaveText("LLM price book");
  await expect(page.locator("table.prices")).toContainText("gpt-4.1");
  const form = page.locator("form.price-form");
  await form.locator("input[name=provider]").fill("openai");
  await form.locator("input[name=model]").fill(model);
  await form.locator("input[name=effective_from]").fill("2025-01-01");
  await form.locator("input[name=input]").fill("1.25");
  await form.locator("input[name=output]").fill("5");
  await form.getByRole("button", { name: "Preview the change" }).click();
  await expect(page.locator("#preview")).toContainText("stored records change price");
  await expect(page.locator("table.prices")).not.toContainText(model);
  await page.getByRole("button", { name: "Apply this change" }).click();
  await expect(page.locator(".notice.ok")).toContainText("Applied: 1 added, 0 retired");
  await expect(page.locator("table.prices")).toContainText(model);

  // Edit: the form comes filled in, replacing the row.
  await page.locator("table.prices tr", { hasText: model }).getByRole("link", { name: "Edit" }).click();
  await expect(page.locator("form.price-form input[name=model]")).toHaveValue(model);
  await expect(page.locator("form.price-form input[name=retire]")).not.toHaveValue("");
  await page.locator("form.price-form input[name=output]").fill("6");
  await page.locator("form.price-form").getByRole("button", { name: "Preview the change" }).click();
  await page.getByRole("button", { name: "Apply this change" }).click();
  await expect(page.locator(".notice.ok")).toContainText("Applied: 1 added, 1 retired");
  await page.goto("/costs/prices?retired=1");
  await expect(page.locator("table.prices tr.retired", { hasText: model })).toHaveCount(1);
});
