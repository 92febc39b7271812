-- One lease mechanism for every background job (issue 10): a job name, who holds it, until
-- when. A replica takes a free or expired lease, renews its own, and releases it on shutdown;
-- a replica that dies simply stops renewing. The Kafka sampler's per-target leases are jobs
-- named `kafka-sampler:<target id>`.
CREATE TABLE worker_leases (
    job        TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

DROP TABLE kafka_sampler_leases;
