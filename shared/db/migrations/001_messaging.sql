-- The backbone every service uses: inbox (exactly-once effects) and outbox (nothing lost).

-- (source, id) of every event that took effect here; written in the same
-- transaction as the effect, so a redelivered event is recognised and skipped.
CREATE TABLE inbox (
    source       text NOT NULL,
    id           text NOT NULL,
    topic        text NOT NULL,
    "partition"  integer NOT NULL,
    "offset"     bigint NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);

-- Events decided but not yet published; the relay publishes them in order and deletes them.
CREATE TABLE outbox (
    seq     bigserial PRIMARY KEY,
    topic   text NOT NULL,
    key     bytea,
    value   bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '[]'
);

-- Records sent to <topic>.rejected, by their position, so a redelivery rejects once.
CREATE TABLE rejected (
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    reason_code text NOT NULL,
    reason      text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition", "offset")
);
