-- Delivered-message counts reported by providers: the denominator of every rate.
--
-- A provider reports its total for one (esp, sender, hour); a later report for
-- the same hour replaces the earlier one (the newest received_at wins), so a
-- retried or corrected report never adds up twice. Exact reads before merges
-- use FINAL or argMax(delivered, received_at).
CREATE TABLE IF NOT EXISTS deliveries
(
    esp          LowCardinality(String),
    sender       String,
    provider     LowCardinality(String),
    hour         DateTime('UTC'),
    delivered    UInt64,
    received_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (esp, sender, hour, provider);
