-- Where each relay has published up to. Kept apart from the projections' checkpoints: a
-- rebuild of the read models must not make the relay publish everything again, and reads that
-- wait for the projections must not wait for the broker.
CREATE TABLE relay_checkpoints (
    relay TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
