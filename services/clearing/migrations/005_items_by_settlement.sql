-- A dispute names settlements by id: the clearing looks up their hospital and other agency
-- (services/clearing/domain/disputes.py).
CREATE INDEX IF NOT EXISTS items_by_settlement ON items (settlement_id);
