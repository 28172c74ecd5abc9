-- Up Migration

-- The persistent near-duplicate index of a label: one segment per run that deduplicated
-- frames for the label, with the embeddings of the frames that run added (packed in S3),
-- so that later runs for the label are deduplicated against everything seen before.
CREATE TABLE dedupe_segments (
  label         text NOT NULL,
  model_key     text NOT NULL,                  -- embedding model key, e.g. mobilenet_v2-8e7dddbb16ac-224
  workflow_id   text NOT NULL REFERENCES runs (workflow_id) ON DELETE CASCADE,
  vectors_key   text NOT NULL,                  -- S3: frames * dim float32, little-endian
  index_key     text NOT NULL,                  -- S3: JSON {keys, videoIds, pixelHashes}
  frames        integer NOT NULL CHECK (frames >= 0),
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (label, model_key, workflow_id)
);

-- Down Migration
DROP TABLE dedupe_segments;
