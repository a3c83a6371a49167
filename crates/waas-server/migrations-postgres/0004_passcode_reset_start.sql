-- PostgreSQL: the same change as migrations/0004_passcode_reset_start.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- Issue 6, after review (docs/protocol/passcode.md). Each record version has its own OPRF key
-- (opaque-ke's credential identifier is the group and the version), and a finished login
-- authorizes ONE reset registerStart: the version that registerStart evaluated the OPRF under
-- (the login's record_version + 1) is kept here, and the registerFinish that uses the login must
-- store exactly that version. NULL: the login has not started a reset.
ALTER TABLE passcode_logins ADD COLUMN reset_version BIGINT ;

-- No schema change, a rule change: passcode_attempts.locked is no longer cleared by a successful
-- login. A successful loginFinish resets `failures` to 0 only while it is below the lock
-- (MAX_FAILED_LOGINS) and not locked; once locked only `waas-server unlock-passcode` clears it.
