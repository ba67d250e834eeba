-- Retries: how many a deployment gives a failed device, how many of its entries failed with
-- retries left (they do not finish it), and which attempt each entry is on.
ALTER TABLE deployments ADD COLUMN retries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN retrying BIGINT NOT NULL DEFAULT 0;
ALTER TABLE device_deployments ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1;
