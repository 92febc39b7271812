// Kubernetes end to end, against the real API server the TEST command started
// (LOOKOUT_TEST_KUBECONFIG): a Deployment whose container the kernel OOM-kills (the pod is
// run by kwok; its termination is written through the status subresource as the kubelet
// writes it), an admin adds the cluster as a target by pasting its kubeconfig, and a
// responder runs the Kubernetes probe from an incident and sees the OOMKilled finding with
// its YAML patch and a copy button.
import { expect, test } from "@playwright/test";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { hydrated, signIn, signInAsAdmin, unique } from "./helpers";

type Kube = { server: string; token: string; ca: Buffer; yaml: string };

function kubeconfig(): Kube {
  const path = process.env.LOOKOUT_TEST_KUBECONFIG;
  expect(path, "LOOKOUT_TEST_KUBECONFIG is set by scripts/test").toBeTruthy();
  const yaml = readFileSync(path!, "utf8");
  const pick = (key: string) => {
    const m = yaml.match(new RegExp(`^\\s*${key}:\\s*(\\S+)\\s*$`, "m"));
    expect(m, `${key} in the test kubeconfig`).toBeTruthy();
    return m![1];
  };
  return { server: pick("server"), token: pick("token"), ca: Buffer.from(pick("certificate-authority-data"), "base64"), yaml };
}

/** One call to the API server (admin token, the cluster's own CA). */
function kube(k: Kube, method: string, path: string, body?: unknown, contentType = "application/json"): Promise<{ status: number; json: any }> {
  const url = new URL(path, k.server);
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method, ca: k.ca, headers: { authorization: `Bearer ${k.token}`, "content-type": contentType, accept: "application/json" } },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null }));
      },
    );
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

test("a responder runs the Kubernetes probe from an incident and gets the OOMKilled fix", async ({ page, browser }) => {
  test.setTimeout(120_000);
  const k = kubeconfig();
  // A kwok node to run the pods (kept if another test made it).
  const node = await kube(k, "POST", "/api/v1/nodes", {
    metadata: { name: "kwok-general", annotations: { "kwok.x-k8s.io/node": "fake" }, labels: { type: "kwok" } },
    status: { allocatable: { cpu: "8", memory: "32Gi", pods: "110" }, capacity: { cpu: "8", memory: "32Gi", pods: "110" } },
  });
  expect([201, 409]).toContain(node.status);
  const ns = unique("e2e-").toLowerCase();
  expect((await kube(k, "POST", "/api/v1/namespaces", { metadata: { name: ns } })).status).toBe(201);
  const dep = await kube(k, "POST", `/apis/apps/v1/namespaces/${ns}/deployments`, {
    metadata: { name: "checkout" },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: "checkout" } },
      template: {
        metadata: { labels: { app: "checkout" } },
        spec: { containers: [{ name: "app", image: "registry.example.com/checkout:4.2.0", resources: { limits: { memory: "256Mi" } } }] },
      },
    },
  });
  expect(dep.status).toBe(201);
  let pod = "";
  await expect
    .poll(async () => {
      const l = await kube(k, "GET", `/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dcheckout`);
      const running = (l.json?.items ?? []).find((p: any) => p.status?.phase === "Running");
      pod = running?.metadata?.name ?? "";
      return pod;
    }, { timeout: 40_000 })
    .not.toBe("");
  const now = Date.now();
  const iso = (ago: number) => new Date(now - ago * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const st = await kube(
    k,
    "PATCH",
    `/api/v1/namespaces/${ns}/pods/${pod}/status`,
    {
      status: {
        conditions: [{ type: "Ready", status: "False", lastTransitionTime: iso(300) }],
        containerStatuses: [{
          name: "app", image: "registry.example.com/checkout:4.2.0", imageID: "", ready: false, restartCount: 8,
          state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 5m0s restarting failed container=app" } },
          lastState: { terminated: { exitCode: 137, reason: "OOMKilled", startedAt: iso(120), finishedAt: iso(90) } },
        }],
      },
    },
    "application/strategic-merge-patch+json",
  );
  expect(st.status).toBe(200);

  // The admin adds the cluster by pasting its kubeconfig, and tests the connection.
  await signInAsAdmin(page);
  const origin = new URL(page.url()).origin;
  const responder = unique("kresp");
  const res = await page.request.post("/api/v1/users", { headers: { origin }, data: { username: responder, role: "responder", password: "responder-password" } });
  expect(res.status()).toBe(201);
  await page.goto("/targets");
  await hydrated(page);
  const name = unique("shop-cluster-");
  const form = page.locator("#create-target-form");
  await form.locator("input[name=name]").fill(name);
  await form.locator("select[name=kind]").selectOption("kubernetes");
  await form.locator("input[name=connection]").fill(`${k.server}?namespace=${ns}`);
  await form.locator("textarea[name=kubeconfig]").fill(k.yaml);
  await form.locator("input[name=environment]").fill("staging");
  await form.getByRole("button", { name: "Add target" }).click();
  await expect(page.getByText(`Added ${name} (kubernetes).`)).toBeVisible();
  const row = page.locator(`tr[data-target="${name}"]`);
  await row.getByRole("button", { name: "Test connection" }).click();
  await expect(page.locator("#test-result")).toContainText("Connected: kubernetes v1.34.2");
  await expect(page.locator("#test-result")).toContainText("14 of 14 reads allowed");
  // The kubeconfig never comes back.
  expect(await page.content()).not.toContain(k.token);

  // The responder opens an incident and runs the probe on the deployment.
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await signIn(p, responder, "responder-password");
  await p.goto("/incidents/new");
  await hydrated(p);
  const nf = p.locator("#new-incident-form");
  await nf.getByLabel("Title").fill(unique("Checkout pods restarting "));
  await nf.getByLabel(/Affected services/).fill("checkout");
  await nf.getByRole("button", { name: "Open incident" }).click();
  await expect(p).toHaveURL(/\/incidents\/INC-\d+$/);
  await hydrated(p);
  const panel = p.locator("#probe-runs");
  const rf = panel.locator("#run-probe-form");
  await rf.locator("select[name=choice]").selectOption({ label: `${name} — Kubernetes workload diagnosis (staging)` });
  await rf.locator("details.params[data-probe=kubernetes] summary").click();
  await rf.locator('input[name="params[kubernetes.workload]"]').fill("deployment/checkout");
  await rf.getByRole("button", { name: "Run probe" }).click();
  const run = panel.locator(".run").first();
  await expect(run).toHaveAttribute("data-status", "ok", { timeout: 30_000 });

  const findings = p.locator("#findings");
  await expect(findings).toContainText("K8S_CRASHLOOP_OOMKILLED", { timeout: 5_000 });
  await expect(findings).toContainText("deployment/checkout: container app is OOMKilled and restarting");
  const f = findings.locator("article.finding").filter({ hasText: "K8S_CRASHLOOP_OOMKILLED" });
  const detail = await f.getByRole("link", { name: "K8S_CRASHLOOP_OOMKILLED" }).getAttribute("href");
  const pd = await ctx.newPage();
  await pd.goto(detail!);
  await hydrated(pd);
  // The patch (YAML, with the doubled limit), the command, and a copy button for each.
  const md = pd.locator(".remediation .md");
  await expect(md).toContainText("memory: 512Mi");
  await expect(md).toContainText(`kubectl -n ${ns} patch deployment checkout --type strategic`);
  const yamlCmd = pd.locator(".commands .cmd").filter({ hasText: "memory: 512Mi" });
  await expect(yamlCmd.getByRole("button", { name: "Copy" })).toBeVisible();
  // The evidence: the pod, the last termination and the previous container's last lines.
  await expect(pd.locator("table.evidence").first()).toContainText("OOMKilled (exit code 137)");
  await expect(pd.locator(".evidence-table").first()).toContainText(pod);
  await pd.locator("details summary", { hasText: "Raw excerpt" }).click();
  await expect(pd.locator("details pre")).toContainText("OutOfMemoryError");
  for (const width of [1280, 390]) {
    await pd.setViewportSize({ width, height: 900 });
    await pd.screenshot({ path: `test-results/k8s-finding-${width}.png`, fullPage: true });
  }
  await ctx.close();
});

const MANIFEST = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: careless
spec:
  replicas: 3
  selector:
    matchLabels: {app: careless}
  template:
    metadata:
      labels: {app: careless}
    spec:
      containers:
      - name: app
        image: registry.example.com/careless:latest
        securityContext: {privileged: true}
---
apiVersion: v1
kind: Service
metadata:
  name: careless
  annotations: {note: "</textarea><script>window.__pwned=1</script><svg onload=window.__pwned=2>"}
spec:
  selector: {app: carless}
  ports: [{port: 80}]
`;

for (const js of [true, false]) {
  test(`pasted manifests are checked with the findings under their lines (${js ? "enhanced" : "no JavaScript"})`, async ({ browser }) => {
    const ctx = await browser.newContext({ javaScriptEnabled: js });
    const page = await ctx.newPage();
    await signInAsAdmin(page);
    await page.goto("/targets");
    await page.getByRole("link", { name: /Check Kubernetes manifests/ }).click();
    await expect(page).toHaveURL(/\/kubernetes\/manifests$/);
    if (js) await hydrated(page);
    await page.locator("#manifest-form textarea[name=yaml]").fill(MANIFEST);
    await page.locator("#manifest-form").getByRole("button", { name: "Check" }).click();
    const report = page.locator("#manifest-report");
    await expect(report).toContainText("2 documents (Deployment/careless, Service/careless)");
    // The privileged container: under line 14 (its `- name: app`), critical, with the fix.
    const l14 = page.locator("li#L14");
    await expect(l14).toHaveClass(/flagged/);
    await expect(l14.locator(".manifest-issue[data-code=K8S_MF_PRIVILEGE]")).toContainText("container app is privileged");
    await expect(l14.locator("[data-code=K8S_MF_IMAGE_TAG]")).toBeVisible();
    await expect(page.locator("li#L18 [data-code=K8S_MF_SERVICE_SELECTOR]")).toContainText("app=carless matches no pod template");
    // The pasted text is kept in the form, as text: the breakout payload never runs.
    await expect(page.locator("#manifest-form textarea[name=yaml]")).toHaveValue(MANIFEST);
    expect(await page.evaluate(() => (window as any).__pwned ?? null)).toBeNull();
    // Posted, never put in the address (a manifest may hold a Secret).
    expect(page.url()).not.toContain("yaml=");
    if (js) {
      await l14.locator("[data-code=K8S_MF_PRIVILEGE] details summary").click();
      await expect(l14.locator("[data-code=K8S_MF_PRIVILEGE] pre")).toContainText("allowPrivilegeEscalation: false");
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: 900 });
        await page.screenshot({ path: `test-results/k8s-manifests-${width}.png`, fullPage: true });
      }
    }
    // Not YAML: the error is shown, the text kept.
    await page.locator("#manifest-form textarea[name=yaml]").fill("kind: [");
    await page.locator("#manifest-form").getByRole("button", { name: "Check" }).click();
    await expect(page.getByText(/do not parse as YAML/)).toBeVisible();

    // A file instead of pasted text, checked against a cluster (a Kubernetes target): the
    // file's text is what is listed and kept, and the report says what the nodes offer.
    const k = kubeconfig();
    const origin = new URL(page.url()).origin;
    const cluster = unique("mf-cluster-");
    const made = await page.request.post("/api/v1/targets", {
      headers: { origin },
      data: { name: cluster, kind: "kubernetes", connection: k.server, secret: k.yaml, environment: "staging" },
    });
    expect(made.status()).toBe(201);
    await page.goto("/kubernetes/manifests");
    if (js) await hydrated(page);
    await page.locator("#manifest-form textarea[name=yaml]").fill("");
    await page.locator("#manifest-form input[type=file]").setInputFiles({ name: "careless.yaml", mimeType: "application/yaml", buffer: Buffer.from(MANIFEST) });
    await page.locator("#manifest-form select[name=target]").selectOption({ label: `${cluster} (staging)` });
    await page.locator("#manifest-form").getByRole("button", { name: "Check" }).click();
    await expect(page.locator("#manifest-report")).toContainText("2 documents (Deployment/careless, Service/careless)");
    await expect(page.locator("#manifest-cluster")).toContainText(new RegExp(`Checked against ${cluster}: \\d+ nodes; the largest allocatable is`));
    await expect(page.locator("li#L14 [data-code=K8S_MF_PRIVILEGE]")).toBeVisible();
    await expect(page.locator("#manifest-form textarea[name=yaml]")).toHaveValue(MANIFEST);
    await expect(page.locator("#manifest-form select[name=target]")).toHaveValue(String((await made.json()).id));
    expect(await page.evaluate(() => (window as any).__pwned ?? null)).toBeNull();
    if (js) {
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: 900 });
        await page.screenshot({ path: `test-results/k8s-manifests-cluster-${width}.png`, fullPage: true });
      }
    }
    await ctx.close();
  });
}
