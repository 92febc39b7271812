-- The time of the samples a round stored (NULL for skipped rounds): the evaluation window
-- of a round is this round plus the previous nine recorded ones, read from here instead of
-- searching kafka_samples for its distinct times. Rounds recorded before this column
-- existed have none, so right after the upgrade the windows refill (INCOMPLETE for up to
-- ten rounds).
ALTER TABLE kafka_rounds ADD COLUMN sampled_at TIMESTAMPTZ;
CREATE INDEX kafka_rounds_sampled_idx ON kafka_rounds (target_id, sampled_at DESC) WHERE sampled_at IS NOT NULL;
