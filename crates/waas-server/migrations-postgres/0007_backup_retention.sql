-- PostgreSQL: the same change as migrations/0007_backup_retention.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- Issue 7, after the attack review (docs/protocol/backup.md, "Review findings"). A group keeps
-- several backups: round 5 no longer deletes the one before, it marks it replaced. A replaced
-- backup still recovers the wallet for the retention period (`--backup-retention`), then the
-- periodic sweep deletes it (row and sealed d_srv; the database runs with secure_delete). RevokeDevice makes current again every backup that a backup made by
-- the revoked device replaced, so a thief's backup cannot push the owner's out.
--
-- SQLite cannot change a primary key in place: the table is rebuilt. Every existing row is its
-- group's current backup, and stays so.
CREATE TABLE backups_retained (
    backup                  TEXT    PRIMARY KEY NOT NULL, -- the backup's id: its PrepareDeviceBackup's …/mpcOperations/{id}
    device_group            TEXT    NOT NULL REFERENCES device_groups (name),
    device                  TEXT    NOT NULL REFERENCES devices (name), -- the device that made it
    epoch                   BIGINT  NOT NULL,
    pairing_id              BYTEA    NOT NULL,
    decryption_share_sealed BYTEA    NOT NULL,         -- d_srv, sealed (kind 'backup-share', id the backup)
    device_key_share        BYTEA    NOT NULL,         -- P_dev, compressed
    server_key_share        BYTEA    NOT NULL,         -- P_srv, compressed
    device_ciphertext       BYTEA    NOT NULL,         -- ct_x: x_d encrypted to P
    server_ciphertext       BYTEA    NOT NULL,         -- ct_s: s_d encrypted to P
    create_time_ms          BIGINT  NOT NULL,
    -- NULL: current. Otherwise when a newer backup of the group replaced it (the sweep counts the
    -- retention from here) and that backup's id (a plain id, no foreign key: revocation follows it
    -- to the device that made the newer backup).
    replaced_time_ms        BIGINT ,
    replaced_by             TEXT,
    CHECK ((replaced_time_ms IS NULL) = (replaced_by IS NULL))
);

INSERT INTO backups_retained (backup, device_group, device, epoch, pairing_id,
        decryption_share_sealed, device_key_share, server_key_share, device_ciphertext,
        server_ciphertext, create_time_ms, replaced_time_ms, replaced_by)
    SELECT backup, device_group, device, epoch, pairing_id, decryption_share_sealed,
        device_key_share, server_key_share, device_ciphertext, server_ciphertext, create_time_ms,
        NULL, NULL
    FROM backups;

DROP TABLE backups;
ALTER TABLE backups_retained RENAME TO backups;

-- Round 5 marks its group's current backups; recovery reads one of a group.
CREATE INDEX backups_by_group ON backups (device_group);
-- RevokeDevice runs under SQLite's only write lock: it finds the device's backups, and those
-- they replaced, without scanning the table.
CREATE INDEX backups_by_device ON backups (device);
CREATE INDEX backups_replaced_by ON backups (replaced_by) WHERE replaced_by IS NOT NULL;
-- The sweep runs every half minute: it reads only the replaced rows.
CREATE INDEX backups_replaced ON backups (replaced_time_ms) WHERE replaced_time_ms IS NOT NULL;
