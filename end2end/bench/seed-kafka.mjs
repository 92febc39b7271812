// Seeds what the Kafka group page of the page-weight benchmark shows: a topic with messages,
// a consumer group 400 messages behind, and a Kafka target for the test broker (created
// through Lookout's API, so Lookout's sampler records its lag). Prints the group page's path.
// Used by scripts/bench-page-weight; not a test.
import { Kafka, logLevel } from "kafkajs";
import { request } from "playwright";

const base = process.env.LOOKOUT_URL;
const password = process.env.LOOKOUT_PASSWORD;
const brokers = (process.env.KAFKA_BROKERS ?? "").split(",").filter(Boolean);
if (!base || !password || brokers.length === 0) {
  console.error("usage: LOOKOUT_URL=… LOOKOUT_PASSWORD=… KAFKA_BROKERS=… node seed-kafka.mjs");
  process.exit(2);
}
const stamp = Date.now().toString(36);
const topic = `bench-orders-${stamp}`;
const groupId = `bench-enricher-${stamp}`;
const kafka = new Kafka({ clientId: "bench", brokers, logLevel: logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: 6 }], waitForLeaders: true });
const producer = kafka.producer();
await producer.connect();
for (let p = 0; p < 6; p++) {
  await producer.send({ topic, messages: Array.from({ length: 500 }, (_, i) => ({ partition: p, value: `m${i}` })) });
}
await admin.setOffsets({ groupId, topic, partitions: Array.from({ length: 6 }, (_, p) => ({ partition: p, offset: "433" })) });
await producer.disconnect();
await admin.disconnect();

const api = await request.newContext({ baseURL: base, extraHTTPHeaders: { origin: base } });
const login = await api.post("/auth/login", { form: { username: "admin", password, next: "/" }, maxRedirects: 0 });
if (login.status() >= 400) throw new Error(`sign-in failed: ${login.status()}`);
const r = await api.post("/api/v1/targets", { data: { name: `bench-bus-${stamp}`, kind: "kafka", connection: brokers.join(","), environment: "bench" } });
if (r.status() !== 201) throw new Error(`target: ${r.status()} ${await r.text()}`);
const target = (await r.json()).id;
// Let the sampler record a series (LOOKOUT_KAFKA_SAMPLE_SECS=1 on the server).
const until = Date.now() + 60_000;
let samples = 0;
while (Date.now() < until) {
  const s = await api.get(`/api/v1/kafka/${target}/groups/${groupId}/lag`);
  if (s.ok()) samples = ((await s.json()).points ?? []).length;
  if (samples >= 30) break;
  await new Promise((res) => setTimeout(res, 2_000));
}
console.error(`seeded ${groupId} on target ${target} (${samples} samples)`);
console.log(`/kafka/${target}/groups/${groupId}`);
await api.dispose();
