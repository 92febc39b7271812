// Stored markup that tries to break out of the element it is shown in: every free-text field
// that Lookout shows back gets payloads that end a <textarea>, <title>, <style>, <script> or
// <noscript>, or an attribute, and every page that shows the field is opened with and without
// JavaScript. Nothing may run (no dialog opens) and no injected element may exist in the DOM.
import { expect, test, type Browser, type Page } from "@playwright/test";
import { hydrated, signInAsAdmin, unique, ADMIN_PASSWORD } from "./helpers";

const BREAKOUTS = [
  `</textarea><img src=x onerror=alert(1) data-xss=1>`,
  `</title><img src=x onerror=alert(2) data-xss=2>`,
  `</style><img src=x onerror=alert(3) data-xss=3>`,
  `"><svg onload=alert(4) data-xss=4>`,
  `'><svg onload=alert(5) data-xss=5>`,
  `</script><script>alert(6)</script>`,
  `</noscript><img src=x onerror=alert(7) data-xss=7>`,
];
/** All of them, for long fields. */
const ALL = BREAKOUTS.join(" ");
/** A short field (≤ 100 characters) gets one payload at a time, in turn. */
const short = (i: number) => BREAKOUTS[i % BREAKOUTS.length];

async function watch(page: Page): Promise<string[]> {
  const dialogs: string[] = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss().catch(() => {});
  });
  // The Content-Security-Policy must not have to block anything: our own scripts carry the
  // nonce, and stored text never becomes script.
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) dialogs.push(`CSP: ${m.text()}`);
  });
  return dialogs;
}

async function noInjection(page: Page, dialogs: string[], where: string) {
  await page.waitForTimeout(200);
  expect(dialogs, `a dialog opened on ${where}`).toEqual([]);
  expect(await page.locator("[data-xss]").count(), `an injected element on ${where}`).toBe(0);
  // The only scripts are Lookout's own: each carries the response's CSP nonce (stored text
  // that became a <script> element could not).
  const foreign = await page
    .locator("script")
    .evaluateAll((els) => els.filter((e) => !(e as HTMLScriptElement).nonce).map((e) => e.outerHTML.slice(0, 200)));
  expect(foreign, `an injected script on ${where}`).toEqual([]);
}

test("stored breakout payloads never run, with or without JavaScript", async ({ page, browser }) => {
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const post = async (url: string, data: unknown) => {
    const r = await page.request.post(url, { headers: { origin }, data });
    expect(r.status(), `${url}: ${await r.text()}`).toBeLessThan(300);
    return r.json().catch(() => ({}));
  };

  // Every free-text field of an incident.
  const inc = await post("/api/v1/incidents", {
    title: `${short(0)} ${short(1)} ${short(3)}`,
    severity: "SEV4",
    services: ["web"],
    environment: "staging",
    summary: ALL,
    labels: { team: short(4) },
  });
  const key = inc.key as string;
  const note = await post(`/api/v1/incidents/${key}/notes`, { body: ALL });
  await post(`/api/v1/incidents/${key}/findings`, {
    code: "BREAKOUT_CHECK",
    severity: "warning",
    title: `${short(2)} ${short(5)}`,
    evidence: { facts: [{ name: short(1), value: short(0) }], command: ALL },
    remediation: ALL,
  });
  await post(`/api/v1/incidents/${key}/action-items`, { title: `${short(6)} ${short(3)}`, owner: "admin" });
  // An edited note keeps its history: both versions are shown back.
  expect(note.id, "the created note's id").toBeTruthy();
  const edited = await page.request.patch(`/api/v1/timeline/${note.id}`, { headers: { origin }, data: { body: `${ALL} (edited)` } });
  expect(edited.status()).toBeLessThan(300);

  // Accounts: a user's display name and an API token's name.
  const who = unique("xss");
  await post("/api/v1/users", { username: who, display_name: short(3), role: "viewer", password: "breakout-password" });
  await post("/api/v1/tokens", { name: short(0), role: "viewer" });

  const pages = [`/incidents/${key}`, "/incidents", "/settings/users", "/settings/tokens", "/settings/audit", "/"];

  // With JavaScript: each page hydrates, and the note's edit form (a prefilled textarea) is
  // opened so its content is really parsed by the browser.
  const dialogs = await watch(page);
  for (const p of pages) {
    await page.goto(p);
    await hydrated(page);
    if (p.startsWith("/incidents/")) {
      const edit = page.locator("details.edit-note summary").first();
      await edit.click();
      const ta = page.locator("details.edit-note textarea").first();
      await expect(ta).toHaveValue(new RegExp(`^${escapeRe(BREAKOUTS[0])}`));
    }
    await noInjection(page, dialogs, p);
  }
  await page.goto(`/kafka/999999/groups/${encodeURIComponent(short(1))}`);
  await noInjection(page, dialogs, "a group page named by a payload");
  expect(await page.title()).toContain("</title>");

  // Without JavaScript: the server-rendered HTML alone.
  await withoutJs(browser, async (nojs, d) => {
    for (const p of pages) {
      await nojs.goto(p);
      await noInjection(nojs, d, `${p} (no JavaScript)`);
    }
    await nojs.goto(`/incidents/${key}`);
    const ta = nojs.locator("details.edit-note textarea").first();
    expect(await ta.inputValue()).toContain(BREAKOUTS[0]);
    // Text from the URL lands in the page's <title> (a Kafka group's name): text, not markup.
    await nojs.goto(`/kafka/999999/groups/${encodeURIComponent(short(1))}`);
    await noInjection(nojs, d, "a group page named by a payload (no JavaScript)");
    expect(await nojs.title()).toContain("</title>");
  });
});

function escapeRe(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function withoutJs(browser: Browser, f: (page: Page, dialogs: string[]) => Promise<void>) {
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  const dialogs = await watch(page);
  await page.goto("/login");
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(ADMIN_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.locator(".whoami .username")).toHaveText("admin");
  try {
    await f(page, dialogs);
  } finally {
    await ctx.close();
  }
}
