-- PostgreSQL: the same change as migrations/0003_passcode_export.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- Issue 6: key export. The passcode at the server (OPAQUE, docs/protocol/passcode.md), its
-- logins and failure counts, and whether a pool lets devices take the whole key out
-- (docs/protocol/archive.md). Times are Unix milliseconds; *_sealed columns are sealed under the
-- master key (sealing.rs).

-- operations.kind gains PREPARE_DEVICE_ARCHIVE (no MPC session; its round 1 uses a login).

-- On by default, as in the reference; existing pools keep export on.
ALTER TABLE pools ADD COLUMN export_enabled BOOLEAN NOT NULL DEFAULT TRUE;

-- Secrets of the server itself, made once at first start ('opaque': the OPAQUE ServerKeys).
-- Inserted if absent and then read back, so two processes starting on one database agree.
CREATE TABLE server_secrets (
    name           TEXT    PRIMARY KEY NOT NULL,
    secret_sealed  BYTEA    NOT NULL,
    create_time_ms BIGINT  NOT NULL
);

-- One OPAQUE record per device group (every device of the group logs in with it).
CREATE TABLE passcode_records (
    device_group   TEXT    PRIMARY KEY NOT NULL REFERENCES device_groups (name),
    version        BIGINT  NOT NULL,                  -- 1, then one more for each reset
    record_sealed  BYTEA    NOT NULL,                  -- opaque-ke ServerRegistration
    update_time_ms BIGINT  NOT NULL
);

-- Logins: STARTED (the server's login state kept) -> FINISHED (the session secret kept) ->
-- USED (by one archive or one reset); FAILED (a wrong finalization) and REVOKED (the record
-- changed under it) keep nothing. Each secret is deleted as soon as its step is over.
CREATE TABLE passcode_logins (
    id             TEXT    PRIMARY KEY NOT NULL,      -- …/passcodeLogins/{id}
    device_group   TEXT    NOT NULL REFERENCES device_groups (name),
    device         TEXT    NOT NULL REFERENCES devices (name),
    record_version BIGINT  NOT NULL,                  -- the record it was started against
    state          TEXT    NOT NULL,                  -- STARTED | FINISHED | USED | FAILED | REVOKED
    state_sealed   BYTEA,                              -- the server's login state, while STARTED
    session_sealed BYTEA,                              -- the session secret, while FINISHED
    create_time_ms BIGINT  NOT NULL,
    finish_time_ms BIGINT ,
    use_time_ms    BIGINT 
);
CREATE INDEX passcode_logins_by_group ON passcode_logins (device_group, state);
CREATE INDEX passcode_logins_by_time ON passcode_logins (create_time_ms);

-- Failed passcode attempts per (group, device): a login counts as failed from its start until
-- it finishes well. `locked` is set with the MAX_FAILED_LOGINS-th failure and cleared by a
-- successful login or by `waas-server unlock-passcode`.
CREATE TABLE passcode_attempts (
    device_group    TEXT    NOT NULL REFERENCES device_groups (name),
    device          TEXT    NOT NULL REFERENCES devices (name),
    failures        BIGINT  NOT NULL DEFAULT 0,
    last_attempt_ms BIGINT  NOT NULL,
    locked          BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (device_group, device)
);
