-- Pools own device groups. The server creates pools/default on first start.
CREATE TABLE pools (
    name           TEXT    PRIMARY KEY NOT NULL,  -- pools/{pool}
    create_time_ms INTEGER NOT NULL               -- Unix time, milliseconds
);
