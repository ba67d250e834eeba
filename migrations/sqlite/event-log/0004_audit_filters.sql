-- The audit feed's filters, each read in log order from the newest or from a cursor: an event
-- type is one range of this index. A stream prefix is one range of the unique (tenant, stream,
-- stream_version) index, whose text compares byte by byte (SQLite's BINARY collation) and
-- whose entries end with the rowid, the position.
CREATE INDEX events_by_type ON events (tenant, event_type, position);
