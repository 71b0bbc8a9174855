-- Every (token, provider) pair ever reported, kept apart from `complaints`
-- (where merges keep one row per token): a token reported through two
-- providers is a forgery or a leak, and scoring must see it.
CREATE TABLE IF NOT EXISTS complaint_reports
(
    jti          String,
    provider     LowCardinality(String),
    esp          SimpleAggregateFunction(any, String),
    sender       SimpleAggregateFunction(any, String),
    first_seen   SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (jti, provider);

CREATE MATERIALIZED VIEW IF NOT EXISTS complaint_reports_mv TO complaint_reports AS
SELECT jti, provider, esp, sender, received_at AS first_seen
FROM complaints;

-- Tokens submitted by more than one provider (exact before merges).
CREATE VIEW IF NOT EXISTS multi_provider_tokens AS
SELECT jti, any(esp) AS esp, any(sender) AS sender,
       groupUniqArray(provider) AS providers, min(first_seen) AS first_seen
FROM complaint_reports
GROUP BY jti
HAVING uniqExact(provider) > 1;
