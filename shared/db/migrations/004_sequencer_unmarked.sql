-- Records the sequencer (shared/messaging/sequencer.py) applied before it had read any
-- marker because none was on the log yet, as the service's probe of the broker answered
-- then. The answer depends on when the service asked, not on the log alone: a replay of
-- the log (tools/audit) asks this table instead, and applies the same records at once, in
-- the same order. Empty in a service that uses no sequencer, and once a marker was read
-- nothing is added.
CREATE TABLE IF NOT EXISTS sequencer_unmarked (
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
