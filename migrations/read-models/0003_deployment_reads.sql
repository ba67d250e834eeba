-- The deployments read model, reshaped for the management reads (lists, filters, device
-- history, phases, targeted devices). Read models are disposable: the old tables go and the
-- deployments projection replays the log from the start into the new ones.
DROP TABLE device_deployment_logs;
DROP TABLE device_deployments;
DROP TABLE deployments;
UPDATE projection_checkpoints SET position = 0 WHERE projection = 'deployments';

CREATE TABLE deployments (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    artifact_name TEXT NOT NULL,
    -- Lower-cased by the projection, so `search` matches alike on both engines (SQLite's
    -- LOWER folds ASCII only).
    search_name TEXT NOT NULL,
    search_artifact_name TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    max_devices BIGINT NOT NULL,
    device_count BIGINT NOT NULL,
    aborted BIGINT NOT NULL,
    force_installation BIGINT NOT NULL,
    -- Bytes of the artifacts assigned to the devices, one artifact counted once per device.
    total_size BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX deployments_by_created ON deployments (tenant, created);
CREATE INDEX deployments_by_status ON deployments (tenant, status, created);

-- The devices a deployment targets, in the order the operator gave them.
CREATE TABLE deployment_devices (
    tenant TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (tenant, deployment_id, number)
);

-- Phases of phased deployments; device_count is the devices admitted to the phase.
CREATE TABLE deployment_phases (
    tenant TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    id TEXT NOT NULL,
    batch_size BIGINT,
    start_ts TEXT NOT NULL,
    max_devices BIGINT NOT NULL,
    device_count BIGINT NOT NULL,
    PRIMARY KEY (tenant, deployment_id, number)
);

-- Devices per status in each deployment, kept with every change so statistics and the
-- deployment's own status never count entries.
CREATE TABLE deployment_statistics (
    tenant TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    status TEXT NOT NULL,
    devices BIGINT NOT NULL,
    PRIMARY KEY (tenant, deployment_id, status)
);

-- Artifacts as this projection has seen them: it advances on its own, so it cannot read the
-- artifacts projection's tables while applying an event.
CREATE TABLE deployment_known_artifacts (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX deployment_known_artifacts_by_name ON deployment_known_artifacts (tenant, name);

-- Ids of the artifacts a deployment may install: those of its artifact name when it was
-- created, and those uploaded with that name while it was unfinished.
CREATE TABLE deployment_artifacts (
    tenant TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    PRIMARY KEY (tenant, deployment_id, artifact_id)
);

CREATE TABLE device_deployments (
    tenant TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    -- The entry's own id: the id of the event that created it, stable across rebuilds.
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    substate TEXT,
    artifact_id TEXT,
    device_type TEXT NOT NULL,
    installed_artifact_name TEXT NOT NULL,
    phase BIGINT,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    has_log BIGINT NOT NULL,
    PRIMARY KEY (tenant, deployment_id, device_id)
);
-- A device's history, newest first.
CREATE INDEX device_deployments_by_device ON device_deployments (tenant, device_id, created);

CREATE TABLE device_deployment_logs (
    tenant TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    messages TEXT NOT NULL,
    PRIMARY KEY (tenant, deployment_id, device_id)
);
