-- A deployment's failure policy (JSON; NULL: none) and the counts it tripped on, once it has.
ALTER TABLE deployments ADD COLUMN policy TEXT;
ALTER TABLE deployments ADD COLUMN policy_trip TEXT;
