-- PostgreSQL: the same change as migrations/0002_wallets.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- Issue 4: devices, device groups and their pairings, wallets, keys, addresses, operations,
-- API keys and the ids of used request tokens. Times are Unix milliseconds. Columns named
-- *_sealed hold AES-256-GCM records under the master key (sealing.rs); nothing else is secret.

CREATE TABLE devices (
    name               TEXT    PRIMARY KEY NOT NULL,  -- devices/{id}, id from the auth key's hash
    auth_public_key    BYTEA    NOT NULL UNIQUE,       -- P-256, uncompressed SEC1
    archive_public_key BYTEA    NOT NULL,              -- secp256k1, compressed SEC1
    state              TEXT    NOT NULL,              -- ACTIVE | REVOKED
    create_time_ms     BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    name           TEXT    PRIMARY KEY NOT NULL,      -- apiKeys/{id}
    public_key     BYTEA    NOT NULL,                  -- P-256, uncompressed SEC1
    create_time_ms BIGINT  NOT NULL
);

CREATE TABLE device_groups (
    name              TEXT    PRIMARY KEY NOT NULL,   -- pools/{pool}/deviceGroups/{id}
    pool              TEXT    NOT NULL REFERENCES pools (name),
    state             TEXT    NOT NULL,               -- CREATING | ACTIVE | FAILED
    root_public_key   BYTEA,                           -- X, compressed; set by key generation
    chain_code_sealed BYTEA,                           -- the chain code, sealed
    create_time_ms    BIGINT  NOT NULL
);

CREATE TABLE device_group_devices (
    device_group TEXT NOT NULL REFERENCES device_groups (name),
    device       TEXT NOT NULL REFERENCES devices (name),
    PRIMARY KEY (device_group, device)
);
CREATE INDEX device_group_devices_by_device ON device_group_devices (device);

-- The server's half of each device's pairing, per epoch.
CREATE TABLE pairings (
    device_group   TEXT    NOT NULL REFERENCES device_groups (name),
    device         TEXT    NOT NULL REFERENCES devices (name),
    epoch          BIGINT  NOT NULL,
    state          TEXT    NOT NULL,                  -- PENDING (not yet confirmed by the device) | CONFIRMED | RETIRED
    pairing_id     BYTEA    NOT NULL,
    pairing_sealed BYTEA    NOT NULL,
    create_time_ms BIGINT  NOT NULL,
    PRIMARY KEY (device_group, device, epoch)
);

CREATE TABLE mpc_wallets (
    name           TEXT    PRIMARY KEY NOT NULL,      -- pools/{pool}/mpcWallets/{id}
    pool           TEXT    NOT NULL REFERENCES pools (name),
    device_group   TEXT    NOT NULL REFERENCES device_groups (name),
    next_index     BIGINT  NOT NULL DEFAULT 0,        -- the next address is 0/{next_index}
    create_time_ms BIGINT  NOT NULL
);

CREATE TABLE mpc_keys (
    name            TEXT    PRIMARY KEY NOT NULL,     -- …/deviceGroups/{g}/mpcKeys/{id}
    device_group    TEXT    NOT NULL REFERENCES device_groups (name),
    derivation_path TEXT    NOT NULL,
    public_key      BYTEA    NOT NULL,                 -- compressed SEC1
    address         TEXT    NOT NULL,                 -- EIP-55
    create_time_ms  BIGINT  NOT NULL,
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY UNIQUE, -- creation order (SQLite: rowid)
    UNIQUE (device_group, derivation_path)
);

CREATE TABLE addresses (
    mpc_wallet     TEXT    NOT NULL REFERENCES mpc_wallets (name),
    address        TEXT    NOT NULL,                  -- EIP-55
    network        TEXT    NOT NULL,
    mpc_key        TEXT    NOT NULL REFERENCES mpc_keys (name),
    create_time_ms BIGINT  NOT NULL,
    seq            BIGINT  GENERATED ALWAYS AS IDENTITY UNIQUE, -- creation order (SQLite: rowid)
    PRIMARY KEY (mpc_wallet, address)
);

-- Long-running operations and the state of their MPC exchange. `round` is the last device
-- round answered; `input_hash` and `reply` are that round's input and stored answer, so a repeat
-- gets the same answer and a different input for it is refused.
CREATE TABLE operations (
    id             TEXT    PRIMARY KEY NOT NULL,      -- operations/{id}
    kind           TEXT    NOT NULL,                  -- CREATE_DEVICE_GROUP | CREATE_SIGNATURE
    device_group   TEXT    NOT NULL REFERENCES device_groups (name),
    device         TEXT    NOT NULL REFERENCES devices (name),
    epoch          BIGINT  NOT NULL,
    state          TEXT    NOT NULL,                  -- PENDING | RUNNING | DONE | FAILED
    round          BIGINT  NOT NULL DEFAULT 0,
    input_hash     BYTEA,
    reply          TEXT,
    session_sealed BYTEA,                              -- the server's MPC session between rounds
    metadata       TEXT    NOT NULL,                  -- OperationMetadata, JSON
    params         TEXT    NOT NULL,                  -- what the protocol needs, JSON
    response       TEXT,                              -- OperationResponse, JSON, once DONE
    error          TEXT,                              -- ErrorBody, JSON, once FAILED
    creator        TEXT    NOT NULL,                  -- who created it (devices/… or apiKeys/…)
    request_id     TEXT,
    request_hash   BYTEA,                              -- what was asked under request_id
    create_time_ms BIGINT  NOT NULL,
    update_time_ms BIGINT  NOT NULL,
    UNIQUE (creator, kind, request_id)
);
CREATE INDEX operations_open_by_group ON operations (device_group, device, state);
CREATE INDEX operations_by_state ON operations (state, update_time_ms);

-- Ids of request tokens already accepted, kept until the token expires: each is good once.
CREATE TABLE request_tokens (
    subject    TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_ms BIGINT  NOT NULL,
    PRIMARY KEY (subject, jti)
);
CREATE INDEX request_tokens_by_expiry ON request_tokens (expires_ms);

ALTER TABLE pools ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
