-- The audit feed's filters, each read in log order from the newest or from a cursor: an event
-- type is one range of the first index. A stream prefix is one range of the second, compared
-- byte by byte (COLLATE "C", whatever the database's collation): in a language's collation a
-- name can sort between two names that start with the prefix without starting with it. The
-- unique (tenant, stream, stream_version) index serves appends in the database's collation.
CREATE INDEX events_by_type ON events (tenant, event_type, position);
CREATE INDEX events_by_stream ON events (tenant, stream COLLATE "C", position);
