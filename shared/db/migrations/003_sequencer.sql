-- The sequencer (shared/messaging/sequencer.py): the order of records across partitions by
-- markers' watermarks (the clearing calendar's days). How far each input partition has been
-- read, markers waiting for their cut, and records read past a cut. Empty in a service
-- that uses no sequencer.
CREATE TABLE IF NOT EXISTS sequencer_positions (
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, "partition")
);
CREATE TABLE IF NOT EXISTS sequencer_markers (
    seq         bigserial PRIMARY KEY,
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    value       bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS sequencer_deferred (
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    value       bytea NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
