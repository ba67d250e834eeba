-- The audit feed reads one tenant's events in log order.
CREATE INDEX events_by_tenant ON events (tenant, position);
