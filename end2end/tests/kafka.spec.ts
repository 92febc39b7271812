// Kafka lag end to end against the real broker: a consumer that joined its group and then
// hangs (its offset stops while messages keep arriving) shows as STALL on the overview and
// the group page with its reason and graph; the on-demand lag probe runs into an incident.
import { expect, test } from "@playwright/test";
import { Kafka, logLevel } from "kafkajs";
import { hydrated, signInAsAdmin, unique } from "./helpers";

test("a stalled group shows STALL with its reason and graph; the lag probe runs into an incident", async ({ page }) => {
  test.setTimeout(240_000);
  const brokers = (process.env.KAFKA_BROKERS ?? "").split(",").filter(Boolean);
  expect(brokers.length, "KAFKA_BROKERS is set by scripts/test").toBeGreaterThan(0);
  const kafka = new Kafka({ clientId: "e2e", brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = unique("e2e-orders-");
  const groupId = unique("e2e-enricher-");
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: Array.from({ length: 20 }, (_, i) => ({ value: `m${i}` })) });
  // The group has read five messages...
  await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: "5" }] });
  // ...and its consumer is alive but stuck: it joins, owns the partition, never commits.
  const consumer = kafka.consumer({ groupId, sessionTimeout: 120_000, rebalanceTimeout: 120_000, heartbeatInterval: 1_000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: false });
  let release: () => void = () => {};
  const stuck = new Promise<void>((r) => (release = r));
  await consumer.run({ autoCommit: false, eachMessage: () => stuck });
  // Messages keep arriving.
  let stop = false;
  const feeding = (async () => {
    let i = 0;
    while (!stop) {
      await producer.send({ topic, messages: [{ value: `late${i++}` }] });
      await new Promise((r) => setTimeout(r, 700));
    }
  })();

  try {
    await signInAsAdmin(page);
    const origin = new URL(page.url()).origin;
    const name = unique("events-");
    const r = await page.request.post("/api/v1/targets", {
      headers: { origin },
      data: { name, kind: "kafka", connection: brokers.join(","), environment: "staging" },
    });
    expect(r.status()).toBe(201);
    const target = (await r.json()).id;

    // The overview: the group turns ERR (STALL) once its window of 10 samples is full.
    await page.goto("/kafka");
    await page.getByRole("link", { name }).click();
    await expect(page).toHaveURL(new RegExp(`/kafka/${target}$`));
    const row = page.locator(`#kafka-groups tr[data-group="${groupId}"]`);
    await expect(async () => {
      await page.reload();
      await expect(row).toContainText("ERR (STALL)", { timeout: 1_000 });
    }).toPass({ timeout: 150_000, intervals: [2_000] });
    await expect(page.locator("#last-round")).toContainText("Last sample");
    await expect(row.locator("svg.sparkline")).toBeVisible();

    // The group page: the verdict with its reason, the catch-up line, the graphs.
    await row.getByRole("link", { name: groupId }).click();
    await expect(page.locator("#group-status")).toHaveText("ERR");
    await expect(page.locator("#group-reason")).toContainText("STALL: partition 0's committed offset 5 unchanged for 10 samples");
    await expect(page.locator("#catch-up")).toContainText(/falling behind|not moving|steady/);
    await expect(page.locator("svg.linechart").first()).toBeVisible();
    await expect(page.locator("#partitions")).toContainText("STALL");
    // The member and its assignment (the stuck consumer owns partition 0).
    await expect(page.locator("#members tbody tr")).toHaveCount(1);
    await expect(page.locator("#members")).toContainText(`${topic}-0`);

    // The on-demand lag probe, run from an incident.
    await page.goto("/incidents/new");
    await hydrated(page);
    const nf = page.locator("#new-incident-form");
    await nf.getByLabel("Title").fill(unique("Enrichment lagging "));
    await nf.getByLabel(/Affected services/).fill("enricher");
    await nf.getByRole("button", { name: "Open incident" }).click();
    await expect(page).toHaveURL(/\/incidents\/INC-\d+$/);
    await hydrated(page);
    const rf = page.locator("#run-probe-form");
    await rf.locator("select[name=choice]").selectOption({ label: `${name} — Kafka consumer lag (staging)` });
    await rf.locator("details.params[data-probe=kafka-lag] summary").click();
    await rf.locator('input[name="params[kafka-lag.group]"]').fill(groupId);
    await rf.locator('input[name="params[kafka-lag.sample_interval_s]"]').fill("1");
    await rf.getByRole("button", { name: "Run probe" }).click();
    const run = page.locator("#probe-runs .run").first();
    await expect(run).toHaveAttribute("data-status", "ok", { timeout: 60_000 });
    await expect(page.locator("#findings")).toContainText("KAFKA_GROUP_LAG", { timeout: 10_000 });
    await expect(page.locator("#findings")).toContainText(`Group ${groupId} (Stable, 1 member)`);
    const incidentKey = new URL(page.url()).pathname.split("/").pop() ?? "";

    // Back on the group page: the incident (a probe ran against this target from it) is
    // marked on the graphs and links to it; the partition has its small multiple; the
    // member that joined counts as a rebalance.
    await page.goto(`/kafka/${target}/groups/${encodeURIComponent(groupId)}?range=15m`);
    await expect(page.locator("#annotations")).toContainText(incidentKey);
    await expect(page.locator("svg.linechart a.mark").first()).toHaveAttribute("href", `/incidents/${incidentKey}`);
    await expect(page.locator("svg.linechart rect.band-err").first()).toBeAttached();
    await expect(page.locator("#partition-multiples figure.multiple")).toHaveCount(1);
    await expect(page.locator("#partition-multiples")).toContainText(`p0 · ${topic}`);
    await expect(page.locator("#rebalances")).toContainText("Rebalances (last hour)");
  } finally {
    stop = true;
    release();
    await feeding.catch(() => {});
    const within = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, 5_000))]);
    await within(consumer.disconnect());
    await within(producer.disconnect());
    await within(admin.disconnect());
  }
});
