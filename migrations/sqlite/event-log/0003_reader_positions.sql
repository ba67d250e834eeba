-- How far each projection that serves reads has applied the log, published by whichever
-- instance runs it: what a command waits for before it answers (read-your-writes), readable
-- by every instance that shares the log. A hint, never ahead of the read models' own
-- checkpoints, which are the truth.
CREATE TABLE reader_positions (
    reader TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
