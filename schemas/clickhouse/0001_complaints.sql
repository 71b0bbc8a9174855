-- Accepted complaints, one row per token (jti).
--
-- Exact once-per-token counts: a token may reach this table more than once (a
-- provider's retry, a redelivery after a loader crash, a second provider).
-- ReplacingMergeTree collapses rows with the same sorting key in the same
-- partition, so both are derived from the token alone: the partition from the
-- token's iat and the key from (esp, sender, jti), which never differ between
-- two copies of one token. Merges happen in the background, so queries that
-- must be exact before a merge count distinct jti (uniqExact) or read FINAL.
CREATE TABLE IF NOT EXISTS complaints
(
    jti               String,
    esp               LowCardinality(String),
    sender            String,
    provider          LowCardinality(String),
    code              LowCardinality(String),
    nature            LowCardinality(String),
    campaign          String,
    recipient_domain  LowCardinality(String),
    reporter          String,
    recipient_proven  Bool,
    token_iat         DateTime('UTC'),
    token_exp         DateTime('UTC'),
    reported_at       DateTime64(3, 'UTC'),
    received_at       DateTime64(3, 'UTC'),
    kafka_partition   UInt32,
    kafka_offset      UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(token_iat)
ORDER BY (esp, sender, jti);
