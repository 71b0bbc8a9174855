-- `reputation.evidence` was written empty by every run since the first: a
-- snapshot's figures are its own columns, and the evidence of a tier change
-- is in `penalties`. Dropping it spares a column per snapshot row.
ALTER TABLE reputation DROP COLUMN IF EXISTS evidence;
