-- The message's From domain, from the token's optional `dom` claim (empty
-- when the token has none): the key of the domain reputation level, which
-- follows a sender across ESPs. Rows loaded before this migration have none.
ALTER TABLE complaints ADD COLUMN IF NOT EXISTS from_domain String DEFAULT '' AFTER recipient_domain;
