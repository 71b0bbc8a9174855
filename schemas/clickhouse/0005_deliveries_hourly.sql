-- Delivered counts per hour by (esp, sender, provider), keeping each
-- provider's newest report for the hour (argMax by received_at), so a
-- corrected or repeated report replaces rather than adds. Sum over providers
-- after argMaxMerge for the sender's total.
CREATE TABLE IF NOT EXISTS deliveries_hourly
(
    esp        LowCardinality(String),
    sender     String,
    provider   LowCardinality(String),
    hour       DateTime('UTC'),
    delivered  AggregateFunction(argMax, UInt64, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (esp, sender, hour, provider);

CREATE MATERIALIZED VIEW IF NOT EXISTS deliveries_hourly_mv TO deliveries_hourly AS
SELECT esp, sender, provider, hour, argMaxState(delivered, received_at) AS delivered
FROM deliveries
GROUP BY esp, sender, provider, hour;
