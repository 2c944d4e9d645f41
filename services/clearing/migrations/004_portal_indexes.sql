-- The portal's paged reads (services/clearing/queries.py items_page, items_totals,
-- daily_volumes, settlement_items; docs/portal.md "How fast"). The items owed to an agency
-- and those it owes are read as two branches, each following one of the first two indexes
-- in (business_date, item_id) order: a drill-down page skips index keys only, and the
-- totals beside a statement and the daily volumes are index-only scans (the included
-- columns are all they read). The third finds a settlement's items (the search by
-- settlement id, one settlement's page).
CREATE INDEX IF NOT EXISTS items_cycle_care
    ON items (cycle, care_agency, business_date, item_id)
    INCLUDE (insured_agency, kind, origin_cycle, cleared_amount);
CREATE INDEX IF NOT EXISTS items_cycle_insured
    ON items (cycle, insured_agency, business_date, item_id)
    INCLUDE (care_agency, kind, origin_cycle, cleared_amount);
CREATE INDEX IF NOT EXISTS items_settlement ON items (settlement_id);
