-- The portal's search by person id reads which settlements a person has (settlement_ids:
-- settlement id, person id), and nothing else of this schema (docs/security.md, "Database
-- roles"). Granted by the schema's owner, where the portal's role exists.
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ch_portal') THEN
    GRANT USAGE ON SCHEMA settlement TO ch_portal;
    GRANT SELECT ON settlement_ids TO ch_portal;
  END IF;
END $$;
