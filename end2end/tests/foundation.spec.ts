// The foundation as a person uses it: signing in and out, moving around, Settings.
import { expect, test } from "@playwright/test";
import { ADMIN_PASSWORD, hydrated, signIn, signInAsAdmin, unique } from "./helpers";

test("a wrong password shows an error and creates no session", async ({ page, context }) => {
  await signIn(page, "admin", "definitely-not-the-password");
  await expect(page.getByRole("alert")).toHaveText("Wrong username or password.");
  await expect(page).toHaveURL(/\/login\?error=invalid/);
  const cookies = await context.cookies();
  expect(cookies.find((c) => c.name === "lookout_session")).toBeUndefined();
  await page.goto("/settings");
  await expect(page).toHaveURL(/\/login\?next=%2Fsettings/);
});

test("signing in lands on the page asked for", async ({ page }) => {
  await page.goto("/settings/audit?action=auth.");
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(ADMIN_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/settings\/audit\?action=auth\.$/);
  await expect(page.getByRole("heading", { name: "Audit log" })).toBeVisible();
  await expect(page.locator("#audit-table")).toContainText("auth.login");
  const cookie = (await page.context().cookies()).find((c) => c.name === "lookout_session");
  expect(cookie?.httpOnly).toBe(true);
  expect(cookie?.sameSite).toBe("Lax");
});

test("navigation works, and every page it reaches is enhanced", async ({ page }) => {
  // Pages are server-rendered and links are plain links (islands mode): each page loads
  // whole, and its one island enhances it.
  await signInAsAdmin(page);
  await hydrated(page);
  for (const [link, heading] of [
    ["Incidents", "Incidents"],
    ["Deployments", "Deployments"],
    ["Kafka", "Kafka"],
    ["LLM costs", "LLM costs"],
    ["Targets", "Targets"],
    ["Settings", "Settings"],
  ]) {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: link, exact: true }).click();
    await expect(page.getByRole("heading", { level: 1, name: heading })).toBeVisible();
    await expect(page.getByRole("link", { name: link, exact: true })).toHaveAttribute("aria-current", "page");
    await hydrated(page);
  }
  // Honest empty states, not fake data: a week without LLM calls says so.
  await page.goto("/costs?week=2020-W01");
  await expect(page.getByText("No LLM calls in these two weeks")).toBeVisible();
  await expect(page.locator(".cards")).toContainText("$0.00");
});

test("a hydrated form action updates the page without a reload", async ({ page }) => {
  await signInAsAdmin(page);
  await page.goto("/settings/users");
  await hydrated(page);
  await page.evaluate(() => ((window as any).__noReload = "still here"));
  const name = unique("hyd");
  const form = page.locator("#create-user-form");
  await form.getByLabel("Username").fill(name);
  await form.getByLabel("Role").selectOption("responder");
  await form.getByLabel(/Initial password/).fill("hydrated-password-1");
  await form.getByRole("button", { name: "Add user" }).click();
  await expect(page.getByRole("status")).toContainText(`Added ${name} as responder.`);
  await expect(page.locator(`#users-table tr[data-username="${name}"]`)).toBeVisible();
  expect(await page.evaluate(() => (window as any).__noReload)).toBe("still here");
  // A validation error shows inline, also without a reload.
  await form.getByLabel("Username").fill(name);
  await form.getByLabel(/Initial password/).fill("hydrated-password-1");
  await form.getByRole("button", { name: "Add user" }).click();
  await expect(page.locator(".form-error")).toContainText("already exists");
  expect(await page.evaluate(() => (window as any).__noReload)).toBe("still here");
});

test("signing out ends the session; Back does not show protected data", async ({ page, context }) => {
  await signInAsAdmin(page);
  await page.goto("/settings/users");
  await expect(page.locator("#users-table")).toBeVisible();
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login\?signed_out=1/);
  await expect(page.getByText("You are signed out.")).toBeVisible();
  expect((await context.cookies()).find((c) => c.name === "lookout_session")).toBeUndefined();
  await page.goBack();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.locator("#users-table")).toHaveCount(0);
  const res = await page.request.get("/api/v1/whoami");
  expect(res.status()).toBe(401);
});

test("a viewer gets 403 on an admin page", async ({ browser, page }) => {
  await signInAsAdmin(page);
  const viewer = unique("viewer");
  const res = await page.request.post("/api/v1/users", {
    headers: { origin: new URL(page.url()).origin },
    data: { username: viewer, role: "viewer", password: "viewer-password-1" },
  });
  expect(res.status()).toBe(201);
  const ctx = await browser.newContext();
  const vpage = await ctx.newPage();
  await signIn(vpage, viewer, "viewer-password-1");
  await expect(vpage.locator(".whoami .username")).toHaveText(viewer);
  const direct = await vpage.goto("/settings/users");
  expect(direct?.status()).toBe(403);
  await expect(vpage.getByRole("heading", { name: "403 — not allowed" })).toBeVisible();
  await expect(vpage.locator("#users-table")).toHaveCount(0);
  await ctx.close();
});

test("an admin creates a user and an API token in Settings; the token works", async ({ page, request }) => {
  await signInAsAdmin(page);
  await page.goto("/settings/users");
  await hydrated(page);
  const name = unique("ops");
  const form = page.locator("#create-user-form");
  await form.getByLabel("Username").fill(name);
  await form.getByLabel("Display name").fill("Ops Person");
  await form.getByLabel("Role").selectOption("approver");
  await form.getByLabel(/Initial password/).fill("ops-person-password");
  await form.getByRole("button", { name: "Add user" }).click();
  await expect(page.locator(`#users-table tr[data-username="${name}"]`)).toContainText("approver");

  await page.getByRole("link", { name: "API tokens" }).click();
  await expect(page.getByRole("heading", { name: "API tokens", level: 1 })).toBeVisible();
  const tname = unique("ci-");
  const tform = page.locator("#create-token-form");
  await tform.getByLabel("Name").fill(tname);
  await tform.getByLabel("Role").selectOption("responder");
  await tform.getByRole("button", { name: "Create token" }).click();
  const secret = (await page.locator("#new-token-secret").textContent())?.trim() ?? "";
  expect(secret).toMatch(/^lko_[0-9a-f]{64}$/);
  await expect(page.locator(`#tokens-table tr[data-token="${tname}"]`)).toContainText("live");

  const res = await request.get("/api/v1/whoami", { headers: { authorization: `Bearer ${secret}` } });
  expect(res.status()).toBe(200);
  expect(await res.json()).toMatchObject({ name: `token:${tname}`, role: "responder", method: "token" });

  // Shown once: a reload does not show it again.
  await page.reload();
  await expect(page.locator("#new-token-secret")).toHaveCount(0);
  await expect(page.locator(`#tokens-table tr[data-token="${tname}"]`)).toContainText("live");

  // The new user can sign in with the password the admin set.
  const ctx = await page.context().browser()!.newContext();
  const p2 = await ctx.newPage();
  await signIn(p2, name, "ops-person-password");
  await expect(p2.locator(".whoami .role")).toHaveText("approver");
  await ctx.close();
});

test("forms work without JavaScript", async ({ browser }) => {
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  await signIn(page, "admin", ADMIN_PASSWORD);
  await page.goto("/settings/tokens");
  const tname = unique("nojs-");
  await page.locator("#create-token-form").getByLabel("Name").fill(tname);
  await page.locator("#create-token-form").getByRole("button", { name: "Create token" }).click();
  await expect(page).toHaveURL(/\/settings\/tokens/);
  await expect(page.locator("#new-token-secret")).toHaveText(/^lko_/);
  await expect(page.locator(`#tokens-table tr[data-token="${tname}"]`)).toBeVisible();
  // The secret was in the answer to the post and is kept nowhere: the next visit has none.
  await page.goto("/settings/tokens");
  await expect(page.locator("#new-token-secret")).toHaveCount(0);
  await expect(page.locator(`#tokens-table tr[data-token="${tname}"]`)).toBeVisible();
  await ctx.close();
});

test("the layout works on a 390 px phone", async ({ browser }) => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await ctx.newPage();
  await signIn(page, "admin", ADMIN_PASSWORD);
  await page.goto("/settings/users");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.locator(".nav-toggle-label").click();
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Kafka" })).toBeVisible();
  await ctx.close();
});
