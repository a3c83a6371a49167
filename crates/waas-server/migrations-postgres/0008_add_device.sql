-- PostgreSQL: the same change as migrations/0008_add_device.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- Issue 7: AddDevice, recovery with a backup on a new device (docs/protocol/recovery.md).
-- operations.kind gains ADD_DEVICE (its epoch is the backed-up pairing's; between rounds s_d,
-- the OPAQUE login state and then the refresh stay in the operation's sealed session). The new
-- device's pairing is a pairings row at epoch 1, PENDING until its confirmation (round 9).

-- Failed recovery attempts, per group: the new device is not a device of the group yet, so
-- there is no (group, device) to count against, and a thief could make any number of devices.
-- A round 1 whose partial proves the backup counts one failure before it is answered; a right
-- passcode (round 3) clears the count unless it is locked. Locked at 10 until an operator runs
-- `waas-server unlock-recovery`.
CREATE TABLE recovery_attempts (
    device_group    TEXT    PRIMARY KEY NOT NULL REFERENCES device_groups (name),
    failures        BIGINT  NOT NULL DEFAULT 0,
    last_attempt_ms BIGINT  NOT NULL,
    locked          BOOLEAN NOT NULL DEFAULT FALSE
);

-- What happened to a group's devices, oldest first (by rowid), so the group's other devices can
-- tell the user: DEVICE_ADDED in the commit that ends an AddDevice, DEVICE_REVOKED in a
-- revocation's transaction (one row per group of the device).
CREATE TABLE device_group_events (
    device_group TEXT    NOT NULL REFERENCES device_groups (name),
    type         TEXT    NOT NULL,            -- DEVICE_ADDED | DEVICE_REVOKED
    device       TEXT    NOT NULL REFERENCES devices (name),
    operation    TEXT,                        -- operations/{id} of the AddDevice, if any
    time_ms      BIGINT  NOT NULL,
    seq          BIGINT  GENERATED ALWAYS AS IDENTITY UNIQUE -- creation order (SQLite: rowid)
);
CREATE INDEX device_group_events_by_group ON device_group_events (device_group);
