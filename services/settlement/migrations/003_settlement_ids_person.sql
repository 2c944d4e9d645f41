-- The portal's search by person id (services/clearing/queries.py settlements_of_person)
-- reads a person's settlement ids; without this index it scans every settlement id.
CREATE INDEX IF NOT EXISTS settlement_ids_person ON settlement_ids (person_id);
