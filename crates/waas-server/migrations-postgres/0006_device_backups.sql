-- PostgreSQL: the same change as migrations/0006_device_backups.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- Issue 7: PrepareDeviceBackup (docs/protocol/backup.md). operations.kind gains
-- PREPARE_DEVICE_BACKUP (its rounds keep d_srv, P_dev and the ciphertexts in the operation's
-- sealed session until round 5).

-- Each group's current backup: both halves of one device's pairing encrypted to P = P_dev +
-- P_srv, and the server's decryption half d_srv, sealed. One row per group: a backup verified by
-- its device's dry run (round 5) replaces the group's previous row in the same transaction; one
-- that never gets there replaces nothing.
--
-- No reference to pairings: RevokeDevice deletes a device's pairings, and the backup must
-- outlive that (it is what lets the user recover after revoking a lost device); a foreign key
-- would make the revocation fail, or cascade into the backup.
CREATE TABLE backups (
    device_group            TEXT    PRIMARY KEY NOT NULL REFERENCES device_groups (name),
    backup                  TEXT    NOT NULL UNIQUE,  -- the backup's id: its PrepareDeviceBackup's …/mpcOperations/{id}
    device                  TEXT    NOT NULL REFERENCES devices (name),
    epoch                   BIGINT  NOT NULL,
    pairing_id              BYTEA    NOT NULL,
    decryption_share_sealed BYTEA    NOT NULL,         -- d_srv, sealed (kind 'backup-share', id the backup)
    device_key_share        BYTEA    NOT NULL,         -- P_dev, compressed
    server_key_share        BYTEA    NOT NULL,         -- P_srv, compressed
    device_ciphertext       BYTEA    NOT NULL,         -- ct_x: x_d encrypted to P
    server_ciphertext       BYTEA    NOT NULL,         -- ct_s: s_d encrypted to P
    create_time_ms          BIGINT  NOT NULL
);
