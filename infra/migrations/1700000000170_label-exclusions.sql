-- Up Migration

-- A label's data is its own (issue 17).
--
-- 1. Exclusions in the taxonomy: `labels.excludes` lists the labels a frame of this label
--    cannot show, as declared in infra/taxonomy.json (ingest writes it). The relation is
--    made symmetric and inherited by descendants when it is read (domain/taxonomy.ts): it is
--    what lets a positive of one label be evidence of `other` for a label it excludes.
ALTER TABLE labels ADD COLUMN excludes text[] NOT NULL DEFAULT '{}';

-- 2. Where a weak label came from, so that what a run inherits can be checked exactly:
--    origin 'own' (the run's own weak label: the search's role of the frame's video),
--    'inherited' (copied from an earlier run of the same label: inherited_from is that run,
--    inherited_key the frame whose label was copied, inherited_label the label it had there)
--    or 'evidence' (`other` because inherited_from, a run of a label this one excludes,
--    gave inherited_key the positive label inherited_label). NULL: a row written before this
--    migration (its provenance is unknown: domain/labelled.ts says what the repair can tell of
--    those) or a human label (always the label's own Label Studio project).
ALTER TABLE frame_labels ADD COLUMN origin text CHECK (origin IN ('own', 'inherited', 'evidence'));
ALTER TABLE frame_labels ADD COLUMN inherited_from text;
ALTER TABLE frame_labels ADD COLUMN inherited_key text;
ALTER TABLE frame_labels ADD COLUMN inherited_label text;
ALTER TABLE frame_labels ADD CONSTRAINT frame_labels_provenance CHECK (
  (coalesce(origin, 'own') = 'own' AND inherited_from IS NULL AND inherited_key IS NULL AND inherited_label IS NULL)
  OR (origin IN ('inherited', 'evidence') AND inherited_from IS NOT NULL AND inherited_key IS NOT NULL AND inherited_label IS NOT NULL)
);

-- Down Migration
ALTER TABLE frame_labels DROP CONSTRAINT frame_labels_provenance;
ALTER TABLE frame_labels DROP COLUMN inherited_label;
ALTER TABLE frame_labels DROP COLUMN inherited_key;
ALTER TABLE frame_labels DROP COLUMN inherited_from;
ALTER TABLE frame_labels DROP COLUMN origin;
ALTER TABLE labels DROP COLUMN excludes;
