-- Read models are disposable: a rebuild replays the log from position 0 into them.
-- Times are RFC 3339 UTC text with microseconds, so text order is time order on every engine.
CREATE TABLE projection_checkpoints (
    projection TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);

CREATE TABLE deployments (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    artifact_name TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    max_devices BIGINT NOT NULL,
    device_count BIGINT NOT NULL,
    finished_count BIGINT NOT NULL,
    started BIGINT NOT NULL,
    aborted BIGINT NOT NULL,
    force_installation BIGINT NOT NULL,
    phases TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX deployments_by_created ON deployments (tenant, created);

CREATE TABLE device_deployments (
    tenant TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    status TEXT NOT NULL,
    substate TEXT,
    artifact_id TEXT,
    device_type TEXT NOT NULL,
    installed_artifact_name TEXT NOT NULL,
    phase BIGINT,
    created TEXT NOT NULL,
    finished TEXT,
    has_log BIGINT NOT NULL,
    PRIMARY KEY (tenant, deployment_id, device_id)
);
CREATE INDEX device_deployments_by_device ON device_deployments (tenant, device_id);

CREATE TABLE device_deployment_logs (
    tenant TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    messages TEXT NOT NULL,
    PRIMARY KEY (tenant, deployment_id, device_id)
);
