-- Up Migration

-- Label taxonomy: every label may have a parent (animal > dog) and synonyms.
CREATE TABLE labels (
  name        text PRIMARY KEY CHECK (name = lower(name) AND name <> ''),
  parent      text REFERENCES labels (name) ON DELETE SET NULL,
  synonyms    text[] NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Video catalog: one row per distinct file content (sha256).
CREATE TABLE videos (
  id           text PRIMARY KEY,                 -- catalog id, e.g. "vtest"
  sha256       text NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  s3_key       text NOT NULL,                    -- videos/<sha256>/<file name>
  file_name    text NOT NULL,
  title        text NOT NULL DEFAULT '',
  bytes        bigint NOT NULL CHECK (bytes >= 0),
  duration_s   double precision,
  width        integer,
  height       integer,
  codec        text,
  frame_rate   text,
  has_audio    boolean,
  source       jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE video_labels (
  video_id  text NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
  label     text NOT NULL REFERENCES labels (name),
  source    text NOT NULL DEFAULT 'catalog',
  PRIMARY KEY (video_id, label)
);
CREATE INDEX video_labels_label ON video_labels (label);

-- One run of a workflow (new-category, retraining) and its steps.
CREATE TABLE runs (
  workflow_id  text PRIMARY KEY,
  kind         text NOT NULL,
  label        text NOT NULL,
  input        jsonb NOT NULL,
  status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
  result       jsonb,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);

CREATE TABLE run_steps (
  workflow_id   text NOT NULL REFERENCES runs (workflow_id) ON DELETE CASCADE,
  step          text NOT NULL,
  manifest_key  text NOT NULL,
  summary       jsonb NOT NULL DEFAULT '{}',
  duration_ms   integer,
  finished_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workflow_id, step)
);

-- Extracted frames: content-derived keys, one row per (video, extraction parameters, timestamp).
CREATE TABLE frames (
  s3_key        text PRIMARY KEY,
  video_id      text NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
  params_hash   text NOT NULL,
  frame_index   integer NOT NULL CHECK (frame_index >= 0),
  timestamp_s   double precision NOT NULL,
  width         integer NOT NULL,
  height        integer NOT NULL,
  bytes         integer NOT NULL,
  sha256        text NOT NULL,
  sharpness     double precision NOT NULL,
  brightness    double precision NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (video_id, params_hash, frame_index)
);

-- Frame labels: weak (from the catalog search) now, human labels later.
CREATE TABLE frame_labels (
  frame_key    text NOT NULL REFERENCES frames (s3_key) ON DELETE CASCADE,
  workflow_id  text NOT NULL REFERENCES runs (workflow_id) ON DELETE CASCADE,
  label        text NOT NULL,
  source       text NOT NULL CHECK (source IN ('weak', 'human', 'model')),
  confidence   real NOT NULL DEFAULT 1 CHECK (confidence BETWEEN 0 AND 1),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (frame_key, workflow_id, source)
);

-- Versioned datasets: one version per run that built one.
CREATE TABLE datasets (
  name          text NOT NULL,
  version       integer NOT NULL CHECK (version >= 1),
  workflow_id   text NOT NULL UNIQUE REFERENCES runs (workflow_id),
  manifest_key  text NOT NULL,
  counts        jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, version)
);

-- Model registry.
CREATE TABLE models (
  name             text NOT NULL,
  version          integer NOT NULL CHECK (version >= 1),
  role             text NOT NULL CHECK (role IN ('teacher', 'student')),
  workflow_id      text NOT NULL REFERENCES runs (workflow_id),
  dataset_name     text NOT NULL,
  dataset_version  integer NOT NULL,
  artifact_prefix  text NOT NULL,
  labels           text[] NOT NULL,
  metrics          jsonb NOT NULL,
  stage            text NOT NULL DEFAULT 'candidate' CHECK (stage IN ('candidate', 'production', 'archived')),
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, version, role),
  UNIQUE (workflow_id, role),
  FOREIGN KEY (dataset_name, dataset_version) REFERENCES datasets (name, version)
);

-- Down Migration
DROP TABLE models;
DROP TABLE datasets;
DROP TABLE frame_labels;
DROP TABLE frames;
DROP TABLE run_steps;
DROP TABLE runs;
DROP TABLE video_labels;
DROP TABLE videos;
DROP TABLE labels;
