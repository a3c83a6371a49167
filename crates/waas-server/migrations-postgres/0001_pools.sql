-- PostgreSQL: the same change as migrations/0001_pools.sql (BIGINT for INTEGER, BYTEA for BLOB, BOOLEAN
-- for flags; an identity column where SQLite's rowid gives the order).
-- Pools own device groups. The server creates pools/default on first start.
CREATE TABLE pools (
    name           TEXT    PRIMARY KEY NOT NULL,  -- pools/{pool}
    create_time_ms BIGINT  NOT NULL               -- Unix time, milliseconds
);
