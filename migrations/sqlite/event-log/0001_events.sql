-- The append-only event log. Rows are only ever inserted, by the one writer connection, which
-- takes position = max + 1 inside its transaction: positions are gap-free and commit in order.
CREATE TABLE events (
    position INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    stream TEXT NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    correlation_id TEXT,
    causation_id TEXT,
    actor TEXT,
    payload TEXT NOT NULL,
    UNIQUE (tenant, stream, stream_version)
);
