import { test, expect, type Response } from "@playwright/test";
import { hydrated, signInAsAdmin } from "./helpers";

// The page and its bundle come compressed and the bundle by its content-hashed name with a
// year of immutable caching (the build precompressed it: the server sends that copy), and
// the page still hydrates and works.
test("pages and the wasm come compressed, the bundle hashed and cached, and the page hydrates", async ({ page }) => {
  await signInAsAdmin(page);
  const seen: Response[] = [];
  page.on("response", (r) => seen.push(r));
  const doc = await page.goto("/incidents");
  expect(doc).not.toBeNull();
  const docHeaders = await doc!.allHeaders();
  expect(docHeaders["content-encoding"]).toMatch(/^(br|gzip)$/);
  expect(docHeaders["cache-control"]).toBe("no-store");
  await hydrated(page);

  const wasm = seen.find((r) => r.url().endsWith(".wasm"));
  expect(wasm, `responses: ${seen.map((r) => r.url()).join(", ")}`).toBeDefined();
  expect(new URL(wasm!.url()).pathname).toMatch(/^\/pkg\/lookout\.[A-Za-z0-9_-]{16,}\.wasm$/);
  const wasmHeaders = await wasm!.allHeaders();
  expect(wasmHeaders["content-encoding"]).toBe("br");
  expect(wasmHeaders["cache-control"]).toBe("public, max-age=31536000, immutable");
  const css = seen.find((r) => r.url().endsWith(".css"));
  expect(new URL(css!.url()).pathname).toMatch(/^\/pkg\/lookout\.[A-Za-z0-9_-]{16,}\.css$/);

  // Hydrated and working: a client-side navigation renders the next page.
  await page.getByRole("link", { name: "Targets" }).first().click();
  await expect(page.getByRole("heading", { level: 1, name: "Targets", exact: true })).toBeVisible();
});
