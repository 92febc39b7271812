-- The time of the samples a round stored (NULL for skipped rounds): the evaluation window
-- of a round is this round plus the previous nine recorded ones, read from here instead of
-- searching kafka_samples for its distinct times. Rounds recorded before this column
-- existed have none, so right after the upgrade the windows refill (INCOMPLETE for up to
-- ten rounds).
ALTER TABLE kafka_rounds ADD COLUMN sampled_at TIMESTAMPTZ;
CREATE INDEX kafka_rounds_sampled_idx ON kafka_rounds (target_id, sampled_at DESC) WHERE sampled_at IS NOT NULL;

-- Per-partition lag in every rollup bucket, for the group page's small multiples beyond
-- the raw retention: the group's partitions ('topic/partition', sorted) and the highest
-- lag of each in the bucket, position by position. A bucket whose partition set changed
-- mid-bucket keeps the newest set.
ALTER TABLE kafka_lag_rollups
    ADD COLUMN part_keys TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN part_lag BIGINT[] NOT NULL DEFAULT '{}';

-- Signs the sampler carries from round to round (rebalances, dead-letter topics):
-- {"member_ids": [...], "rebalances": [ms, ...] (the last 20), "dlq": {"<topic>": messages}}.
ALTER TABLE kafka_groups ADD COLUMN signs JSONB NOT NULL DEFAULT '{}'::jsonb;

-- The worst group verdict seen in each bucket (0 OK, 1 INCOMPLETE, 2 WARN, 3 ERR, as
-- kafka_groups.status_rank): the verdict band under the lag graph.
ALTER TABLE kafka_lag_rollups ADD COLUMN status_max SMALLINT NOT NULL DEFAULT 0;
