-- kafka_lag items (issue 12): a consumer group's verdicts from the Kafka sampler.
ALTER TABLE deployment_items DROP CONSTRAINT deployment_items_kind;
ALTER TABLE deployment_items ADD CONSTRAINT deployment_items_kind
    CHECK (kind IN ('manual', 'metric', 'probe', 'kafka_lag'));
