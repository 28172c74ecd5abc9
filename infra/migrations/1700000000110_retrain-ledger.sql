-- Up Migration

-- Which catalog videos each label's runs have used: what the retrain reads to find the
-- videos that arrived since. Derived from the runs' search and extract manifests in S3
-- (the truth), filled lazily by the retrain's plan, so runs made before this table
-- existed count too. 'extracted': frames were made; 'unusable': the video cannot be
-- decoded (VideoDecodeError), never tried again. Other failures are not recorded, so
-- the video is tried again by the next retrain.
CREATE TABLE label_videos (
  label        text NOT NULL,
  video_id     text NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
  workflow_id  text NOT NULL REFERENCES runs (workflow_id) ON DELETE CASCADE,
  role         text NOT NULL CHECK (role IN ('positive', 'negative')),
  outcome      text NOT NULL CHECK (outcome IN ('extracted', 'unusable')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (label, video_id)
);

-- Runs whose manifests have been read into label_videos (only finished runs are marked).
CREATE TABLE label_runs_scanned (
  workflow_id  text PRIMARY KEY REFERENCES runs (workflow_id) ON DELETE CASCADE,
  label        text NOT NULL,
  videos       integer NOT NULL,
  scanned_at   timestamptz NOT NULL DEFAULT now()
);

-- Fingerprint of the labelled frames a dataset version was built from (sha256 over the
-- sorted "frame key, label" pairs): the retrain compares it with the label's labelled
-- frames now to see whether labels changed. Filled when a dataset is built by the
-- retrain, and lazily from the manifest for datasets built before.
CREATE TABLE dataset_fingerprints (
  name               text NOT NULL,
  version            integer NOT NULL,
  labels_fingerprint text NOT NULL,
  labelled_frames    integer NOT NULL,
  PRIMARY KEY (name, version),
  FOREIGN KEY (name, version) REFERENCES datasets (name, version) ON DELETE CASCADE
);

-- The label's labelled frames are gathered by run (domain/labelled.ts).
CREATE INDEX IF NOT EXISTS frame_labels_workflow ON frame_labels (workflow_id);

-- Down Migration
DROP INDEX IF EXISTS frame_labels_workflow;
DROP TABLE dataset_fingerprints;
DROP TABLE label_runs_scanned;
DROP TABLE label_videos;
