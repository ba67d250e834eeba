-- The builds of the read models. Generation 0 is this database's own tables; a rebuild fills
-- generation n+1 beside the live one and then marks it live, in one statement that every
-- instance polls. Only the configured database's copy of this table is read.
CREATE TABLE read_model_generations (
    generation BIGINT PRIMARY KEY,
    -- building, live or retired
    state TEXT NOT NULL
);
INSERT INTO read_model_generations (generation, state) VALUES (0, 'live');
