-- The clearing service's state. Items, reports, postings and results mirror the domain's
-- records row for row (services/clearing/domain/book.py is the in-memory twin).

-- The clearing aggregate (calendar progress, cycles, disputes, ledger heads): one row.
CREATE TABLE clearing_state (
    id    integer PRIMARY KEY CHECK (id = 1),
    state jsonb NOT NULL
);

-- One obligation per cross-region settlement or refund.
CREATE TABLE items (
    item_id        text PRIMARY KEY,
    kind           text NOT NULL,
    hospital       text NOT NULL,
    settlement_id  text NOT NULL,
    insured_agency text NOT NULL,
    care_agency    text NOT NULL,
    business_date  date NOT NULL,
    origin_cycle   text NOT NULL,
    cycle          text NOT NULL,
    cleared_amount numeric(16, 2) NOT NULL,
    reported_on    date,
    document       jsonb NOT NULL
);
CREATE INDEX items_cycle ON items (cycle);
CREATE INDEX items_unreported ON items (business_date) WHERE reported_on IS NULL;

CREATE TABLE daily_reports (
    agency         text NOT NULL,
    date           date NOT NULL,
    checksum       text NOT NULL,
    settlement_ids text[] NOT NULL,
    answer         text,
    PRIMARY KEY (agency, date)
);

-- The per-agency double-entry ledgers, hash-chained in sequence order.
CREATE TABLE postings (
    agency         text NOT NULL,
    sequence       bigint NOT NULL,
    entry_id       text NOT NULL,
    line           integer NOT NULL,
    kind           text NOT NULL,
    account        text NOT NULL,
    counterpart    text NOT NULL,
    side           text NOT NULL CHECK (side IN ('debit', 'credit')),
    amount         numeric(16, 2) NOT NULL CHECK (amount > 0),
    business_time  timestamptz NOT NULL,
    cycle          text NOT NULL,
    origin_cycle   text NOT NULL,
    cause_source   text NOT NULL,
    cause_id       text NOT NULL,
    settlement_id  text,
    link           text NOT NULL,
    PRIMARY KEY (agency, sequence),
    UNIQUE (agency, entry_id, line)
);
CREATE INDEX postings_time ON postings (business_time);

-- Every result published on clearing.results, as published.
CREATE TABLE results (
    seq      bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    type     text NOT NULL,
    key      text NOT NULL,
    document jsonb NOT NULL
);
CREATE INDEX results_type ON results (type, key);

-- The cut between business days (calendar.day_started watermarks): how far each input
-- partition has been read, days waiting for their cut, and records read past a cut.
CREATE TABLE input_positions (
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, "partition")
);
CREATE TABLE pending_days (
    seq         bigserial PRIMARY KEY,
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    value       bytea NOT NULL
);
CREATE TABLE deferred (
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    value       bytea NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
