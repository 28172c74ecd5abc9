-- Up Migration

-- A run can end cancelled (`reelset cancel <run>`, or a cancel from the Temporal UI),
-- and a run can be a part of another: each page of a backfill is a run of its own (its
-- step manifests under runs/<page run>/, its run_steps rows) whose parent is the backfill.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN ('running', 'completed', 'failed', 'cancelled'));
ALTER TABLE runs ADD COLUMN parent_id text REFERENCES runs (workflow_id) ON DELETE CASCADE;
CREATE INDEX runs_parent_id ON runs (parent_id) WHERE parent_id IS NOT NULL;

-- Down Migration
DROP INDEX runs_parent_id;
ALTER TABLE runs DROP COLUMN parent_id;
UPDATE runs SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN ('running', 'completed', 'failed'));
