-- The complaint feed: every accepted complaint reaches its ESP once, in
-- order, so the ESP can stop mailing the person who complained.
--
-- The token's recipient binding travels with the complaint: the ESP knows
-- which address each jti was for and checks it against `rcb`.
ALTER TABLE complaints ADD COLUMN IF NOT EXISTS rcb String DEFAULT '' AFTER reporter;

-- The feed writer reads complaints by load time: a skip index lets it read
-- only the newest parts (no MATERIALIZE: older parts are read once, by the
-- first backfill, and merged parts get the index as they are rewritten).
ALTER TABLE complaints ADD INDEX IF NOT EXISTS loaded_at_minmax loaded_at TYPE minmax GRANULARITY 1;

-- One row per complaint token and ESP, numbered per ESP (`seq`, from 1,
-- without gaps) by the single writer in the scoring service, in load order.
-- A token loaded twice (a retry, a second provider) is fed once: the first
-- copy read. `GET /v1/complaints?since=<seq>`, the webhook and
-- `feedback.v1` all read this table. Never the reporter pseudonym.
CREATE TABLE IF NOT EXISTS complaint_feed
(
    esp               LowCardinality(String),
    seq               UInt64,
    jti               String,
    sender            String,
    campaign          String,
    code              LowCardinality(String),
    nature            LowCardinality(String),
    provider          LowCardinality(String),
    recipient_domain  LowCardinality(String),
    rcb               String,
    reported_at       DateTime64(3, 'UTC'),
    loaded_at         DateTime64(3, 'UTC'),
    fed_at            DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX jti_bloom jti TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (esp, seq);
