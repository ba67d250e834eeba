-- Each device's inventory (Mender's inventory service): the attributes it reported and the
-- tags an operator set, each a JSON array of {name, value, description?, timestamp?}, and its
-- static group. Identity attributes and the status are admission's, in `devices`.
CREATE TABLE inventory (
    tenant TEXT NOT NULL,
    device_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    tags TEXT NOT NULL,
    grp TEXT,
    -- How many times the tags were set: the ETag names this revision.
    tag_revision BIGINT NOT NULL,
    created_ts TEXT NOT NULL,
    updated_ts TEXT NOT NULL,
    PRIMARY KEY (tenant, device_id)
);
CREATE INDEX inventory_by_group ON inventory (tenant, grp);

-- Saved filters (dynamic groups): their predicates as a JSON array.
CREATE TABLE inventory_filters (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    terms TEXT NOT NULL,
    created_ts TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- The static group a deployment was made for (a JSON array; NULL: none).
ALTER TABLE deployments ADD COLUMN groups TEXT;
-- A dynamic deployment's filter ({"id", "name", "terms"}; NULL: not dynamic).
ALTER TABLE deployments ADD COLUMN filter TEXT;
