-- The settlement service's state.

-- Per person: accumulators (deductible and cap use), settlements decided, held refunds;
-- folded from this service's own settlement.events.
CREATE TABLE persons (
    person_id text PRIMARY KEY,
    state     jsonb NOT NULL
);

-- The filing query model: each person's filings and benefit status, folded from filing.events.
CREATE TABLE filing_views (
    person_id text PRIMARY KEY,
    view      jsonb NOT NULL
);

-- A settlement id is unique per hospital across all persons.
CREATE TABLE settlement_ids (
    hospital      text NOT NULL,
    settlement_id text NOT NULL,
    person_id     text NOT NULL,
    PRIMARY KEY (hospital, settlement_id)
);
