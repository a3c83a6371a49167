-- PostgreSQL: the same change as migrations/0010_pairing_operation.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- After the attack review of recovery (docs/protocol/recovery.md, "The server's side").
--
-- The AddDevice operation (`operations.id`) whose round 7 made a pending pairing; NULL for key
-- generation's. An AddDevice that expires, or that a passcode reset fails, deletes only its own
-- pending pairing, never one another AddDevice of the same device made; round 9 confirms only
-- its own.
ALTER TABLE pairings ADD COLUMN operation TEXT;
CREATE INDEX pairings_by_operation ON pairings (operation) WHERE operation IS NOT NULL;
