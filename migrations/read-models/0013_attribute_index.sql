-- The attribute index: one row per value of each device's attributes (an array's elements
-- each; `value` is 's:<text>' or 'n:<number>', or '' for a name whose values are not looked
-- up), kept by the devices projection beside devices and inventory. A search for a value
-- reads the devices that have it instead of the whole fleet, then matches them as before.
CREATE TABLE attribute_values (
    tenant TEXT NOT NULL,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (tenant, scope, name, value, device_id)
);
-- A device's own rows, for the projection to compare with what it has now; covering, or
-- SQLite prefers the primary key's covering scan of the whole tenant.
CREATE INDEX attribute_values_of_device ON attribute_values (tenant, device_id, scope, name, value);

-- How many devices have each attribute name: the search's list of filterable attributes.
CREATE TABLE attribute_names (
    tenant TEXT NOT NULL,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    devices BIGINT NOT NULL,
    PRIMARY KEY (tenant, scope, name)
);

-- Read models that cover every device only when built from the log. A generation created
-- empty (every rebuild, every new installation) has the index whole; one that already held
-- devices when this ran does not, and searches it the old way, reading the whole fleet,
-- until a rebuild (`deployments rebuild`) replaces it.
CREATE TABLE read_model_features (
    name TEXT PRIMARY KEY
);
INSERT INTO read_model_features (name)
SELECT 'attribute_index'
WHERE NOT EXISTS (SELECT 1 FROM devices) AND NOT EXISTS (SELECT 1 FROM inventory);
