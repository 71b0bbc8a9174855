-- Incremental scoring. `loaded_at` is the ClickHouse server's clock when a row
-- was written; a scoring run rescores only the senders with rows loaded since
-- its previous run (plus those whose windows slid or whose cool-down ended).
-- Rows loaded before this migration get the migration's time, once.
ALTER TABLE complaints ADD COLUMN IF NOT EXISTS loaded_at DateTime64(3, 'UTC') DEFAULT now64(3);
ALTER TABLE complaints MATERIALIZE COLUMN loaded_at SETTINGS mutations_sync = 2;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS loaded_at DateTime64(3, 'UTC') DEFAULT now64(3);
ALTER TABLE deliveries MATERIALIZE COLUMN loaded_at SETTINGS mutations_sync = 2;

-- The senders one incremental run rescores. Owned by the single scoring
-- instance of this database: emptied and refilled at the start of each run.
CREATE TABLE IF NOT EXISTS scoring_scope
(
    esp     String,
    sender  String
)
ENGINE = MergeTree
ORDER BY (esp, sender);
