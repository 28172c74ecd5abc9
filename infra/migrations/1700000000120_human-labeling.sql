-- Up Migration

-- Human labelling in Label Studio (issue 10).
--
-- frame_labels gains one row per person: a human label is one Label Studio annotation,
-- identified by its annotation id (the idempotency key of every sync: a webhook, a
-- reconciliation poll and a retried activity all upsert the same row), with the
-- annotator. Weak and model labels stay one row per (frame, run, source).
ALTER TABLE frame_labels DROP CONSTRAINT frame_labels_pkey;
ALTER TABLE frame_labels ADD COLUMN id bigserial PRIMARY KEY;
ALTER TABLE frame_labels ADD COLUMN annotator text;
ALTER TABLE frame_labels ADD COLUMN annotation_id bigint;
ALTER TABLE frame_labels ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX frame_labels_one_per_source ON frame_labels (frame_key, workflow_id, source) WHERE source <> 'human';
CREATE UNIQUE INDEX frame_labels_annotation ON frame_labels (annotation_id) WHERE annotation_id IS NOT NULL;
CREATE INDEX frame_labels_frame ON frame_labels (frame_key);
ALTER TABLE frame_labels ADD CONSTRAINT frame_labels_human_has_annotation
  CHECK (source <> 'human' OR (annotation_id IS NOT NULL AND annotator IS NOT NULL));

-- One Label Studio project per label, reused by every run of the label.
CREATE TABLE labeling_projects (
  label        text PRIMARY KEY,
  project_id   bigint NOT NULL UNIQUE,
  url          text NOT NULL,
  choices      text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A run waiting for people: what the gateway routes webhooks to, and what
-- `reelset labeling status` reads once the wait is over.
CREATE TABLE labeling_runs (
  workflow_id   text PRIMARY KEY REFERENCES runs (workflow_id) ON DELETE CASCADE,
  label         text NOT NULL,
  project_id    bigint NOT NULL,
  status        text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'finished', 'failed')),
  deadline      timestamptz NOT NULL,
  on_deadline   text NOT NULL CHECK (on_deadline IN ('proceed', 'fail')),
  tasks         integer NOT NULL DEFAULT 0,
  summary       jsonb,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz
);
CREATE INDEX labeling_runs_waiting ON labeling_runs (project_id) WHERE status = 'waiting';

-- The Label Studio tasks a run waits for. A task made by an earlier run and still not
-- done is reused (one task per frame and project), so a task may belong to several runs.
CREATE TABLE labeling_tasks (
  task_id        bigint NOT NULL,
  workflow_id    text NOT NULL REFERENCES runs (workflow_id) ON DELETE CASCADE,
  project_id     bigint NOT NULL,
  frame_key      text NOT NULL REFERENCES frames (s3_key) ON DELETE CASCADE,
  video_id       text NOT NULL,
  split          text NOT NULL CHECK (split IN ('train', 'validation')),
  -- Distinct people whose annotations the run waits for (2 on validation frames).
  required       smallint NOT NULL CHECK (required >= 1),
  weak_label     text NOT NULL,
  weak_confidence real NOT NULL,
  uncertainty    real NOT NULL,
  -- The task's updated_at in Label Studio when its annotations were last mirrored: a
  -- reconciliation fetches the annotations of the tasks whose updated_at moved since.
  ls_updated_at  timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task_id, workflow_id),
  UNIQUE (workflow_id, frame_key)
);
CREATE INDEX labeling_tasks_frame ON labeling_tasks (project_id, frame_key);

-- Every annotation of our tasks as Label Studio has it, empty and skipped ones included
-- (they count as done; they give no label). Mirrored by annotation id.
CREATE TABLE labeling_annotations (
  annotation_id  bigint PRIMARY KEY,
  task_id        bigint NOT NULL,
  project_id     bigint NOT NULL,
  frame_key      text NOT NULL REFERENCES frames (s3_key) ON DELETE CASCADE,
  annotator      text NOT NULL,
  annotator_id   bigint NOT NULL,
  label          text,
  cancelled      boolean NOT NULL DEFAULT false,
  ls_updated_at  timestamptz NOT NULL,
  synced_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX labeling_annotations_task ON labeling_annotations (task_id);
CREATE INDEX labeling_annotations_frame ON labeling_annotations (frame_key);

-- Down Migration
DROP TABLE labeling_annotations;
DROP TABLE labeling_tasks;
DROP TABLE labeling_runs;
DROP TABLE labeling_projects;
ALTER TABLE frame_labels DROP CONSTRAINT frame_labels_human_has_annotation;
DELETE FROM frame_labels WHERE source = 'human';
DROP INDEX frame_labels_frame;
DROP INDEX frame_labels_annotation;
DROP INDEX frame_labels_one_per_source;
ALTER TABLE frame_labels DROP COLUMN updated_at;
ALTER TABLE frame_labels DROP COLUMN annotation_id;
ALTER TABLE frame_labels DROP COLUMN annotator;
ALTER TABLE frame_labels DROP COLUMN id;
ALTER TABLE frame_labels ADD PRIMARY KEY (frame_key, workflow_id, source);
