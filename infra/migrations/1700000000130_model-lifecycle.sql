-- Up Migration

-- Model lifecycle (issue 13): the fixed evaluation set per label, evaluations of every
-- model on it, and the registry's stage transitions with who, when and why.

-- A label's evaluation set, versioned: version N holds every frame of version N-1 plus
-- the frames of the videos added on purpose (`reelset evalset grow`). Never rewritten.
CREATE TABLE eval_sets (
  label           text NOT NULL,
  version         integer NOT NULL CHECK (version >= 1),
  frames          integer NOT NULL,
  videos          integer NOT NULL,
  counts          jsonb NOT NULL,              -- frames per class
  actor           text NOT NULL,
  reason          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (label, version)
);

-- The videos reserved for a label's evaluation: no dataset version of the label may
-- train on them (the dataset steps leave their frames out).
CREATE TABLE eval_set_videos (
  label           text NOT NULL,
  video_id        text NOT NULL REFERENCES videos (id) ON DELETE RESTRICT,
  added_in        integer NOT NULL,
  PRIMARY KEY (label, video_id),
  FOREIGN KEY (label, added_in) REFERENCES eval_sets (label, version)
);

CREATE TABLE eval_set_frames (
  label           text NOT NULL,
  version         integer NOT NULL,
  frame_key       text NOT NULL REFERENCES frames (s3_key) ON DELETE RESTRICT,
  video_id        text NOT NULL,
  class           text NOT NULL,               -- the true class of the frame (a model class name, or 'other')
  label_source    text NOT NULL CHECK (label_source IN ('consensus', 'catalog')),
  PRIMARY KEY (label, version, frame_key),
  FOREIGN KEY (label, version) REFERENCES eval_sets (label, version)
);

-- One evaluation of one published model on one version of its label's evaluation set.
CREATE TABLE model_evaluations (
  name            text NOT NULL,
  version         integer NOT NULL,
  role            text NOT NULL,
  eval_version    integer NOT NULL,
  metrics         jsonb NOT NULL,              -- {frames, videos} LevelMetrics (contracts/lifecycle.ts)
  predictions_key text NOT NULL,               -- S3 JSON: per-frame probabilities
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, version, role, eval_version),
  FOREIGN KEY (name, version, role) REFERENCES models (name, version, role) ON DELETE CASCADE,
  FOREIGN KEY (name, eval_version) REFERENCES eval_sets (label, version)
);

-- Every stage change of a model version (both roles move together), and its publication.
CREATE TABLE model_transitions (
  id              bigserial PRIMARY KEY,
  name            text NOT NULL,
  version         integer NOT NULL,
  from_stage      text CHECK (from_stage IN ('candidate', 'production', 'archived')),
  to_stage        text NOT NULL CHECK (to_stage IN ('candidate', 'production', 'archived')),
  actor           text NOT NULL,
  reason          text NOT NULL,
  gate            jsonb,                        -- the gate's decision that allowed a promotion
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_transitions_model ON model_transitions (name, version);

-- At most one production version per label and role: the last line of defence under
-- concurrent promotions (the registry also serialises them with a row lock).
CREATE UNIQUE INDEX models_one_production ON models (name, role) WHERE stage = 'production';

-- Down Migration
DROP INDEX models_one_production;
DROP TABLE model_transitions;
DROP TABLE model_evaluations;
DROP TABLE eval_set_frames;
DROP TABLE eval_set_videos;
DROP TABLE eval_sets;
