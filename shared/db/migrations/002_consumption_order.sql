-- The order in which this service took its events and rejected records: an audit replay
-- feeds the log to the handlers in exactly this order, so that decisions depending on the
-- interleaving of partitions (which filing a settlement saw, a ledger's posting sequence)
-- are repeated exactly.
ALTER TABLE inbox ADD COLUMN seq bigserial;
ALTER TABLE rejected ADD COLUMN seq bigserial;
CREATE UNIQUE INDEX inbox_seq ON inbox (seq);
