-- Devices as device admission (deviceauth) shows them: one row per device, its status the
-- strongest of its auth sets' (accepted > preauthorized > pending > rejected), and its auth
-- sets beside it. Lists are in the order devices first appeared.
CREATE TABLE devices (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    identity_data TEXT NOT NULL,
    created_ts TEXT NOT NULL,
    updated_ts TEXT NOT NULL,
    check_in_time TEXT,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX devices_in_order ON devices (tenant, created_ts, id);
CREATE INDEX devices_by_status ON devices (tenant, status, created_ts, id);

CREATE TABLE auth_sets (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    identity_data TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    status TEXT NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX auth_sets_of_device ON auth_sets (tenant, device_id, ts);
