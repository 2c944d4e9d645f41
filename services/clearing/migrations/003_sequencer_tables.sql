-- The cut between business days moved to the shared sequencer (shared/messaging/sequencer.py,
-- whose tables the backbone's 003_sequencer.sql creates): what a database of before kept in
-- input_positions, pending_days and deferred moves there, in the same order.
INSERT INTO sequencer_positions (topic, "partition", next_offset)
    SELECT topic, "partition", next_offset FROM input_positions
    ON CONFLICT (topic, "partition") DO UPDATE SET next_offset
        = greatest(sequencer_positions.next_offset, excluded.next_offset);
INSERT INTO sequencer_markers (topic, "partition", "offset", value)
    SELECT topic, "partition", "offset", value FROM pending_days ORDER BY seq;
INSERT INTO sequencer_deferred (topic, "partition", "offset", value)
    SELECT topic, "partition", "offset", value FROM deferred ON CONFLICT DO NOTHING;
DROP TABLE input_positions;
DROP TABLE pending_days;
DROP TABLE deferred;
