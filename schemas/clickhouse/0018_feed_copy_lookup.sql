-- The feed writer's copy lookup: a token's copies are looked up only among
-- entries loaded after the token was minted (less a margin for clocks), so
-- each entry keeps the token's iat and a skip index lets the lookup read
-- only the entries loaded since (per ESP, entries are in load order).
-- Entries fed before this migration have an iat of 0: a lookup that
-- reaches back to them reads them all, as every lookup did before.
ALTER TABLE complaint_feed ADD COLUMN IF NOT EXISTS token_iat DateTime64(3, 'UTC') DEFAULT 0;
ALTER TABLE complaint_feed ADD INDEX IF NOT EXISTS loaded_at_minmax loaded_at TYPE minmax GRANULARITY 1;
ALTER TABLE complaint_feed MATERIALIZE INDEX loaded_at_minmax SETTINGS mutations_sync = 2;
