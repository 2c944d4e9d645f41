-- The filing service's state: each person's filings, folded from its own events.
CREATE TABLE persons (
    person_id     text PRIMARY KEY,
    state         jsonb NOT NULL,
    -- The first day on which an expiry or a materials deadline falls due (NULL: none).
    next_deadline date
);
CREATE INDEX persons_next_deadline ON persons (next_deadline) WHERE next_deadline IS NOT NULL;

-- A filing id belongs to one person for ever.
CREATE TABLE filing_ids (
    filing_id text PRIMARY KEY,
    person_id text NOT NULL
);

-- The business days the calendar has started here, so a day is acted on once.
CREATE TABLE days_started (day date PRIMARY KEY);
