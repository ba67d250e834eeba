-- Whether a deployment is paused (1) and why ({"kind": "operator" | "policy", ...}).
ALTER TABLE deployments ADD COLUMN paused BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN pause_cause TEXT;
