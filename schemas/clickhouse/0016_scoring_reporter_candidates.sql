-- The reporters that may pass the per-reporter cap at some suspect ESP,
-- campaign or domain of one scoring run: 32-bit hashes of (provider,
-- reporter) with more complaints than the cap across one level's suspects.
-- A cheap pass without FINAL fills it; the exact count (FINAL, by token)
-- then reads only these reporters' rows. Hash collisions and copies of a
-- token only add candidates. Emptied and refilled by each run.
CREATE TABLE IF NOT EXISTS scoring_reporter_candidates
(
    h  UInt32
)
ENGINE = MergeTree
ORDER BY h;
