"""The peer of the sampler benchmark: consumer lag of every group computed the way most
scripts do it, with the confluent-kafka Python client (librdkafka underneath): list the
groups, then per group describe it and read its committed offsets, then the watermarks of
each of its partitions. Prints one JSON object: elapsed seconds, the lag per group, and the
Kafka requests librdkafka sent (from its statistics)."""

import json
import sys
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

brokers, prefix = sys.argv[1], sys.argv[2]
sent = {}


def stats(name):
    def cb(raw):
        s = json.loads(raw)
        sent[name] = sum(b.get("tx", 0) for b in s.get("brokers", {}).values())
    return cb


common = {"bootstrap.servers": brokers, "statistics.interval.ms": 100}
t0 = time.monotonic()
admin = AdminClient({**common, "stats_cb": stats("admin")})
consumer = Consumer({**common, "group.id": "lookout-bench-peer-unused",
                     "enable.auto.commit": False, "stats_cb": stats("consumer")})
groups = sorted(g.group_id for g in admin.list_consumer_groups(request_timeout=30).result().valid
                if g.group_id.startswith(prefix))
lags = {}
for g in groups:
    admin.describe_consumer_groups([g], request_timeout=30)[g].result()
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(g)], request_timeout=30)[g].result()
    total = 0
    for tp in offsets.topic_partitions:
        if tp.offset < 0:
            continue
        _low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=30)
        total += max(high - tp.offset, 0)
    lags[g] = total
elapsed = time.monotonic() - t0
# Let both clients emit their final statistics.
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    admin.poll(0.1)
    consumer.poll(0.1)
consumer.close()
print(json.dumps({"elapsed_s": elapsed, "groups": len(groups), "requests": sum(sent.values()), "lags": lags}))
