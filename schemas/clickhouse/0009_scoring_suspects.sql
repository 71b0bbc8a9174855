-- The senders of one scoring run whose complaints, counted without the
-- per-reporter cap, reach a penalty tier. Only for these can the cap change
-- the outcome (it can only lower a rate), so only their reporters are
-- counted, which spares a full rescore from grouping every complaint by
-- reporter. Owned by the single scoring instance of this database: emptied
-- and refilled by each run.
CREATE TABLE IF NOT EXISTS scoring_suspects
(
    esp     String,
    sender  String
)
ENGINE = MergeTree
ORDER BY (esp, sender);
