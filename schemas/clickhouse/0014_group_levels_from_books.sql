-- The campaign and domain levels are now counted from the sender read: each
-- sender's counts come per (campaign, from_domain) slice, and the scorer
-- keeps every group's counts as the sum of its slices (as it did for the
-- ESP level). No run lists dirty groups any more.
DROP TABLE IF EXISTS scoring_group_scope;
