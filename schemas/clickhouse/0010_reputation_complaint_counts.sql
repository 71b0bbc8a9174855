-- Each reputation snapshot also records the window's complaints: distinct
-- tokens in all, per code and per provider (before weights and caps), so an
-- ESP sees what the rate is made of. Snapshots written before this
-- migration show 0 and empty maps.
ALTER TABLE reputation ADD COLUMN IF NOT EXISTS complaints UInt64 DEFAULT 0 AFTER delivered;
ALTER TABLE reputation ADD COLUMN IF NOT EXISTS complaints_by_code Map(LowCardinality(String), UInt64) AFTER complaints;
ALTER TABLE reputation ADD COLUMN IF NOT EXISTS complaints_by_provider Map(LowCardinality(String), UInt64) AFTER complaints_by_code;
