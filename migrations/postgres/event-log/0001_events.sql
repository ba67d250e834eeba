-- The append-only event log. Rows are only ever inserted.
--
-- Writers are serialised by a transaction-scoped advisory lock and take position = max + 1
-- under it, so positions are gap-free and commit in order: a reader that has seen position N
-- has seen every event before it, and no later commit can appear below N.
CREATE TABLE events (
    position BIGINT PRIMARY KEY,
    event_id UUID NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    stream TEXT NOT NULL,
    stream_version BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    correlation_id TEXT,
    causation_id TEXT,
    actor TEXT,
    payload JSONB NOT NULL,
    CONSTRAINT events_stream_version_unique UNIQUE (tenant, stream, stream_version)
);
