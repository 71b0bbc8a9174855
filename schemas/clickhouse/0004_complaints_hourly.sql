-- Complaints per hour by (esp, sender, code, provider). The count is a
-- uniqExact state over jti, so a token inserted twice is counted once, and
-- merging states across providers (uniqExactMerge) counts a token reported
-- by two providers once as well.
CREATE TABLE IF NOT EXISTS complaints_hourly
(
    esp       LowCardinality(String),
    sender    String,
    code      LowCardinality(String),
    provider  LowCardinality(String),
    hour      DateTime('UTC'),
    tokens    AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (esp, sender, hour, code, provider);

CREATE MATERIALIZED VIEW IF NOT EXISTS complaints_hourly_mv TO complaints_hourly AS
SELECT esp, sender, code, provider,
       toStartOfHour(toDateTime(reported_at, 'UTC')) AS hour,
       uniqExactState(jti) AS tokens
FROM complaints
GROUP BY esp, sender, code, provider, hour;
