-- Artifacts as the API shows them. `document` holds the parsed artifact; the columns beside
-- it are what lists filter, sort and page by.
CREATE TABLE artifacts (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    device_types TEXT NOT NULL,
    modified TEXT NOT NULL,
    size BIGINT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX artifacts_by_name ON artifacts (tenant, name);

-- Bytes of stored artifact files per tenant, kept with every upload and delete.
CREATE TABLE storage_usage (
    tenant TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL
);
