-- Delivery cursors of the penalty log to ESPs, per channel (`kafka`:
-- penalties.v1, `webhook`: the ESP's URL). The log itself is the outbox: a
-- dispatcher sends rows after `last_seq` in order and moves the cursor only
-- after the channel accepted them, so a restart resends rather than loses
-- (receivers dedupe by (esp, seq)). Newest row per (channel, esp) wins.
CREATE TABLE IF NOT EXISTS penalty_dispatch
(
    channel          LowCardinality(String),
    esp              LowCardinality(String),
    last_seq         UInt64,
    attempts         UInt32,
    next_attempt_ms  Int64,
    last_error       String,
    updated_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (channel, esp);
