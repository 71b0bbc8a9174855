-- Scoring partitioned by ESP (services/scoring/src/partition.rs): several
-- scoring instances share the database, each the only writer of its ESPs.
-- A From domain spans ESPs, so its book is summed from each instance's
-- share: what the senders of that instance's ESPs add to it, per window
-- (delivered messages, the providers delivering some, complaints per code
-- and provider). An instance rewrites its share of a domain whenever it
-- changes; an empty share means it adds nothing any more. Unused (empty)
-- when one instance scores everything.
CREATE TABLE IF NOT EXISTS domain_books
(
    domain               String,
    instance             UInt16,
    delivered            Array(UInt64),
    providers            Array(Array(String)),
    complaint_code       Array(String),
    complaint_provider   Array(String),
    complaint_window     Array(UInt8),
    complaint_count      Array(UInt64),
    updated_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (domain, instance);

-- The domain level's decisions, written by the instance that owns the
-- level: each domain's tier in force with the rule and evidence of its
-- last change. Every instance tells the ESPs it owns from these rows, in
-- their own chains (newest row per domain wins).
CREATE TABLE IF NOT EXISTS domain_decisions
(
    domain       String,
    tier         LowCardinality(String),
    rule         LowCardinality(String),
    evidence     String,
    at_ms        Int64,
    updated_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY domain;
