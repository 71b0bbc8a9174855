-- Reputation levels. A sender id is chosen by its ESP, so a spammer can
-- spread its mail over fresh ids, each under the minimum volume. Scoring
-- therefore also judges the ESP's whole book (level `esp`) and each campaign
-- across every sender id that carries it (level `campaign`), with the same
-- rules. In `reputation`, `sender_standing` and `penalties` the new `level`
-- column says which, and `sender` holds the key at that level: the sender
-- id, '' for the ESP level, the campaign id for the campaign level. Rows
-- written before this migration are sender-level.
ALTER TABLE reputation ADD COLUMN IF NOT EXISTS level LowCardinality(String) DEFAULT 'sender' AFTER esp;
ALTER TABLE penalties ADD COLUMN IF NOT EXISTS level LowCardinality(String) DEFAULT 'sender' AFTER seq;

-- The tier in force at the levels above the sender (newest row wins), as
-- `sender_standing` holds it for senders.
CREATE TABLE IF NOT EXISTS group_standing
(
    level         LowCardinality(String),
    esp           LowCardinality(String),
    key           String,
    tier          LowCardinality(String),
    below_since   Nullable(Int64),
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (level, esp, key);

-- Delivered counts per campaign: a provider sees the token (and its `cmp`)
-- on every delivered message, so it may report per (esp, sender, campaign,
-- hour). A sender's delivered count is the sum over its campaigns ('' for
-- mail without one, or a report not broken down), as before; a campaign's
-- is the sum of the rows naming it. The campaign is part of the
-- replacing key, so per-campaign reports of one hour do not replace each other.
-- (A column joins a sorting key only in the ALTER that adds it, without a
-- default expression: String's own default is the '' wanted here.)
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS campaign String, MODIFY ORDER BY (esp, sender, hour, provider, campaign);
ALTER TABLE deliveries_hourly ADD COLUMN IF NOT EXISTS campaign String, MODIFY ORDER BY (esp, sender, hour, provider, campaign);
ALTER TABLE deliveries_hourly_mv MODIFY QUERY
SELECT esp, sender, provider, hour, campaign, argMaxState(delivered, received_at) AS delivered
FROM deliveries
GROUP BY esp, sender, provider, hour, campaign;

-- The ESPs and campaigns one incremental run rescores at the group levels
-- (`level`, `esp`, `key` as above). Owned by the single scoring instance of
-- this database: emptied and refilled at the start of each run.
CREATE TABLE IF NOT EXISTS scoring_group_scope
(
    level  LowCardinality(String),
    esp    String,
    key    String
)
ENGINE = MergeTree
ORDER BY (level, esp, key);

-- The groups of one run whose complaints, counted without the per-reporter
-- cap, reach a penalty tier: only their reporters are counted (as
-- `scoring_suspects` for senders). Emptied and refilled by each run.
CREATE TABLE IF NOT EXISTS scoring_group_suspects
(
    level  LowCardinality(String),
    esp    String,
    key    String
)
ENGINE = MergeTree
ORDER BY (level, esp, key);
