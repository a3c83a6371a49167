-- PostgreSQL: the same change as migrations/0005_revoke_device.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- Issue 7: RevokeDevice (docs/protocol/revoke.md). No new state: devices.state becomes REVOKED,
-- the device's open operations FAILED, its pairings are deleted and its open passcode logins
-- REVOKED, all in one transaction. That transaction holds SQLite's only write lock, so it must
-- find the device's rows without scanning whole tables: these indexes lead with the device.
CREATE INDEX operations_open_by_device ON operations (device, state);
CREATE INDEX pairings_by_device ON pairings (device);
CREATE INDEX passcode_logins_by_device ON passcode_logins (device, state);
