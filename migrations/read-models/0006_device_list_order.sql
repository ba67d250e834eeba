-- A deployment's entries in the order its devices joined, read a page at a time by the
-- unpaged device list.
CREATE INDEX device_deployments_in_order ON device_deployments (tenant, deployment_id, created, device_id);
