-- The portal's paged reads (services/clearing/queries.py items_page, items_totals,
-- settlement_items; docs/portal.md "How fast"): a drill-down reads the items owed to an agency
-- and those it owes as two branches ordered by (business_date, item_id), each following one of
-- the first two indexes, so a page costs its offset rather than the whole cycle; the third
-- finds a settlement's items (the search by settlement id, one settlement's page).
CREATE INDEX IF NOT EXISTS items_cycle_care
    ON items (cycle, care_agency, business_date, item_id) INCLUDE (insured_agency);
CREATE INDEX IF NOT EXISTS items_cycle_insured
    ON items (cycle, insured_agency, business_date, item_id) INCLUDE (care_agency);
CREATE INDEX IF NOT EXISTS items_settlement ON items (settlement_id);
