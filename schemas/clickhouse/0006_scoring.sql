-- Scoring output. `reputation`: one snapshot per (esp, sender, window) and
-- run, kept 30 days. `sender_standing`: each sender's tier in force and any
-- running cool-down (newest row wins). `penalties`: every tier change with
-- its evidence, append-only, hash-chained per ESP (see services/scoring/src/chain.rs;
-- `ricochet audit verify --esp X` recomputes the chain).
CREATE TABLE IF NOT EXISTS reputation
(
    esp           LowCardinality(String),
    sender        String,
    window        LowCardinality(String),
    computed_at   DateTime64(3, 'UTC'),
    delivered     UInt64,
    weighted      Float64,
    rate          Float64,
    lower         Float64,
    upper         Float64,
    tier          LowCardinality(String),
    evidence      String
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(computed_at)
ORDER BY (esp, sender, window, computed_at)
TTL toDateTime(computed_at) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS sender_standing
(
    esp           LowCardinality(String),
    sender        String,
    tier          LowCardinality(String),
    below_since   Nullable(Int64),
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (esp, sender);

CREATE TABLE IF NOT EXISTS penalties
(
    esp        LowCardinality(String),
    seq        UInt64,
    sender     String,
    at_ms      Int64,
    from_tier  LowCardinality(String),
    to_tier    LowCardinality(String),
    rule       LowCardinality(String),
    evidence   String,
    prev_hash  String,
    hash       String
)
ENGINE = MergeTree
ORDER BY (esp, seq);
