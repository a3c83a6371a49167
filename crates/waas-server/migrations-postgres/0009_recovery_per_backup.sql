-- PostgreSQL: the same change as migrations/0009_recovery_per_backup.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- After the attack review of recovery (docs/protocol/recovery.md, "The server's side").
--
-- Recovery attempts are counted per BACKUP, not per group: a string can lock only itself. Per
-- group, a thief who kept a backup string of a stolen device (still live after the owner revoked
-- the device) could burn the group's ten attempts again after every operator unlock, and lock
-- the owner's own backup out with it. The group stays on each row for the operator
-- (`unlock-recovery --device-group G` unlocks all of a group's backups). A swept backup takes
-- its count with it.
--
-- An existing group count is copied to each of the group's backups: a lock stays a lock.
CREATE TABLE recovery_attempts_by_backup (
    backup          TEXT    PRIMARY KEY NOT NULL REFERENCES backups (backup) ON DELETE CASCADE,
    device_group    TEXT    NOT NULL REFERENCES device_groups (name),
    failures        BIGINT  NOT NULL DEFAULT 0,
    last_attempt_ms BIGINT  NOT NULL,
    locked          BOOLEAN NOT NULL DEFAULT FALSE
);

INSERT INTO recovery_attempts_by_backup (backup, device_group, failures, last_attempt_ms, locked)
    SELECT backups.backup, recovery_attempts.device_group, recovery_attempts.failures,
        recovery_attempts.last_attempt_ms, recovery_attempts.locked
    FROM recovery_attempts JOIN backups ON backups.device_group = recovery_attempts.device_group;

DROP TABLE recovery_attempts;
ALTER TABLE recovery_attempts_by_backup RENAME TO recovery_attempts;
CREATE INDEX recovery_attempts_by_group ON recovery_attempts (device_group);
