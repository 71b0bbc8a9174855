-- Delivered counts per From domain: a provider sees the token (and its
-- `dom`) on every delivered message, so it may report per (esp, sender,
-- campaign, from_domain, hour): the denominator of the domain level, which
-- is scored across ESPs. A sender's count is the sum over its rows, as
-- before. Part of the replacing key, like the campaign.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS from_domain String, MODIFY ORDER BY (esp, sender, hour, provider, campaign, from_domain);
ALTER TABLE deliveries_hourly ADD COLUMN IF NOT EXISTS from_domain String, MODIFY ORDER BY (esp, sender, hour, provider, campaign, from_domain);
ALTER TABLE deliveries_hourly_mv MODIFY QUERY
SELECT esp, sender, provider, hour, campaign, from_domain, argMaxState(delivered, received_at) AS delivered
FROM deliveries
GROUP BY esp, sender, provider, hour, campaign, from_domain;
