import { expect, type Page } from "@playwright/test";

export const ADMIN_PASSWORD = process.env.E2E_ADMIN_PASSWORD ?? "";

/** Waits until the wasm bundle has hydrated the page (the router then handles links). */
export async function hydrated(page: Page) {
  try {
    await page.waitForFunction(() => (window as any).__lookoutHydrated === true, null, { timeout: 30_000 });
  } catch (e) {
    // Say why: a wasm panic (kept by the frontend), or the bundle never ran.
    const why = await page
      .evaluate(() => ({
        url: location.href,
        readyState: document.readyState,
        panic: (window as any).__lookoutPanic ?? null,
        scripts: Array.from(document.scripts).map((s) => s.src || `inline:${(s.textContent ?? "").slice(0, 80)}`),
      }))
      .catch((err) => ({ evaluateFailed: String(err) }));
    throw new Error(`the page did not hydrate within 30 s: ${JSON.stringify(why)}\n${e}`);
  }
}

export async function signIn(page: Page, username: string, password: string) {
  await page.goto("/login");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

export async function signInAsAdmin(page: Page) {
  expect(ADMIN_PASSWORD, "E2E_ADMIN_PASSWORD is set by scripts/test").not.toBe("");
  await signIn(page, "admin", ADMIN_PASSWORD);
  await expect(page.locator(".whoami .username")).toHaveText("admin");
}

export function unique(prefix: string) {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1000)}`;
}
