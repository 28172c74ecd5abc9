/**
 * `frame_labels`: every label a frame was given: weak (from the catalog search, with its
 * provenance), model (batch predict) and human (one row per Label Studio annotation). The
 * only place its SQL is written (docs/architecture.md, "Postgres: one owner per table").
 * Every function runs on a pool or on a client inside the caller's transaction.
 */
import type { LabelSource } from '../../contracts';
import type { Queryable } from '../db';

/**
 * Where a weak label came from: the run's own (`own`), copied from an earlier run of the
 * same label (`inherited`), or `other` on evidence from a run of a label this one excludes
 * (`evidence`).
 */
export type LabelOrigin = 'own' | 'inherited' | 'evidence';

/** A run's weak (or model) label of a frame, with its provenance. */
export interface RunLabel {
  frameKey: string;
  label: string;
  source: LabelSource;
  /** 0..1. */
  confidence: number;
  origin: LabelOrigin;
  /** The run, frame and label it was copied or derived from (all null for `own`). */
  inheritedFrom: string | null;
  inheritedKey: string | null;
  inheritedLabel: string | null;
}

/** A row of a label's runs as {@link ofLabelRuns} reads it (`annotation_id`: bigint, as a string). */
export interface LabelRunRow {
  frame_key: string;
  video_id: string;
  workflow_id: string;
  label: string;
  source: LabelSource;
  confidence: number;
  annotator: string | null;
  annotation_id: string | null;
  created_at: Date;
  updated_at: Date;
  origin: LabelOrigin | null;
  inherited_from: string | null;
  inherited_key: string | null;
  inherited_label: string | null;
  /** The frame's video carries the label (a label of its family in the catalog, or a positive of the label's runs). */
  carries: boolean;
  /** The label of the run the row was copied from (as recorded), when it was copied. */
  source_run_label: string | null;
  /** The row it was copied from still exists (with that label, not a model label). */
  source_row_exists: boolean;
}

/** A person's label of a frame (`annotation_id`: bigint, as a string). */
export interface HumanVote {
  frame_key: string;
  label: string;
  annotator: string;
  annotation_id: string;
  updated_at: Date;
}

/**
 * Upsert a run's weak (non-human) label of a frame with its provenance: one row per
 * (frame, run, source); a retried attempt overwrites its own row.
 */
export async function upsertRunLabel(db: Queryable, workflowId: string, f: RunLabel): Promise<void> {
  await db.query(
    `INSERT INTO frame_labels (frame_key, workflow_id, label, source, confidence, origin, inherited_from, inherited_key, inherited_label)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (frame_key, workflow_id, source) WHERE source <> 'human' DO UPDATE SET label = EXCLUDED.label, confidence = EXCLUDED.confidence,
       origin = EXCLUDED.origin, inherited_from = EXCLUDED.inherited_from, inherited_key = EXCLUDED.inherited_key,
       inherited_label = EXCLUDED.inherited_label, updated_at = now()`,
    [f.frameKey, workflowId, f.label, f.source, f.confidence, f.origin, f.inheritedFrom, f.inheritedKey, f.inheritedLabel],
  );
}

/**
 * Upsert a batch predict run's `model` labels (one per frame; re-running updates the same
 * rows). Frames without a row in `frames` are skipped.
 *
 * @returns the rows written.
 */
export async function upsertModelLabels(
  db: Queryable,
  workflowId: string,
  rows: ReadonlyArray<{ frameKey: string; label: string; confidence: number }>,
): Promise<number> {
  const res = await db.query(
    `INSERT INTO frame_labels (frame_key, workflow_id, label, source, confidence)
     SELECT t.k, $2, t.l, 'model', t.c FROM unnest($1::text[], $3::text[], $4::real[]) AS t(k, l, c) JOIN frames f ON f.s3_key = t.k
     ON CONFLICT (frame_key, workflow_id, source) WHERE source <> 'human' DO UPDATE SET label = EXCLUDED.label, confidence = EXCLUDED.confidence, updated_at = now()`,
    [rows.map((r) => r.frameKey), workflowId, rows.map((r) => r.label), rows.map((r) => r.confidence)],
  );
  return res.rowCount ?? 0;
}

/**
 * Upsert a person's label of a frame, keyed by the Label Studio annotation id.
 *
 * @param h.workflowId the run that first sent the frame's task.
 */
export async function upsertHuman(
  db: Queryable,
  h: { frameKey: string; workflowId: string; label: string; annotator: string; annotationId: number },
): Promise<void> {
  await db.query(
    `INSERT INTO frame_labels (frame_key, workflow_id, label, source, confidence, annotator, annotation_id)
     VALUES ($1, $2, $3, 'human', 1, $4, $5)
     ON CONFLICT (annotation_id) WHERE annotation_id IS NOT NULL
     DO UPDATE SET label = EXCLUDED.label, annotator = EXCLUDED.annotator, updated_at = now()`,
    [h.frameKey, h.workflowId, h.label, h.annotator, h.annotationId],
  );
}

/** Remove the label of one annotation (an annotation that no longer gives one: skipped, emptied). */
export async function removeOfAnnotation(db: Queryable, annotationId: number): Promise<void> {
  await db.query(`DELETE FROM frame_labels WHERE annotation_id = $1`, [annotationId]);
}

/** Remove the human labels of annotations (deleted in Label Studio). */
export async function removeHumanOfAnnotations(db: Queryable, annotationIds: readonly number[]): Promise<void> {
  await db.query(`DELETE FROM frame_labels WHERE source = 'human' AND annotation_id = ANY($1::bigint[])`, [annotationIds]);
}

/**
 * Every row of the given runs (of frames among `keys`, or all), with what deciding whether a
 * label's read keeps it needs (`keepLabelRow` in `domain/labelled.ts`): the frame's video, whether
 * the video carries the label, the label of the run a copied row came from and whether that
 * row still exists. Ordered by frame key, newest row first, then run.
 *
 * @param q.family the label and its descendants (what "carries the label" means in the catalog).
 * @param q.keys null: every frame.
 */
export async function ofLabelRuns(
  db: Queryable,
  q: { label: string; runIds: readonly string[]; family: readonly string[]; keys: readonly string[] | null },
): Promise<LabelRunRow[]> {
  const res = await db.query<LabelRunRow>(
    `SELECT fl.frame_key, f.video_id, fl.workflow_id, fl.label, fl.source, fl.confidence, fl.annotator, fl.annotation_id,
            fl.created_at, fl.updated_at, fl.origin, fl.inherited_from, fl.inherited_key, fl.inherited_label,
            (EXISTS (SELECT 1 FROM video_labels vl WHERE vl.video_id = f.video_id AND vl.label = ANY($3::text[]))
             OR EXISTS (SELECT 1 FROM label_videos lv WHERE lv.video_id = f.video_id AND lv.label = $1 AND lv.role = 'positive')) AS carries,
            src.label AS source_run_label,
            (fl.inherited_from IS NOT NULL AND EXISTS (
               SELECT 1 FROM frame_labels s WHERE s.frame_key = fl.inherited_key AND s.workflow_id = fl.inherited_from
                  AND s.label = fl.inherited_label AND s.source <> 'model')) AS source_row_exists
       FROM frame_labels fl JOIN frames f ON f.s3_key = fl.frame_key LEFT JOIN runs src ON src.workflow_id = fl.inherited_from
      WHERE fl.workflow_id = ANY($2::text[]) AND ($4::text[] IS NULL OR fl.frame_key = ANY($4::text[]))
      ORDER BY fl.frame_key, fl.created_at DESC, fl.workflow_id`,
    [q.label, q.runIds, q.family, q.keys],
  );
  return res.rows;
}

/** People's labels of frames among `keys` given in one Label Studio project (any run's). */
export async function humanVotesInProject(db: Queryable, keys: readonly string[], projectId: number): Promise<HumanVote[]> {
  const r = await db.query<HumanVote>(
    `SELECT fl.frame_key, fl.label, fl.annotator, fl.annotation_id, fl.updated_at FROM frame_labels fl
     JOIN labeling_annotations la ON la.annotation_id = fl.annotation_id
     WHERE fl.source = 'human' AND la.project_id = $2 AND fl.frame_key = ANY($1::text[])`,
    [keys, projectId],
  );
  return r.rows;
}

/** People's labels of frames among `keys` given in the label's own Label Studio project. */
export async function humanVotesInLabelProject(db: Queryable, keys: readonly string[], label: string): Promise<HumanVote[]> {
  const r = await db.query<HumanVote>(
    `SELECT fl.frame_key, fl.label, fl.annotator, fl.annotation_id, fl.updated_at FROM frame_labels fl
     JOIN labeling_annotations la ON la.annotation_id = fl.annotation_id
     JOIN labeling_projects lp ON lp.project_id = la.project_id AND lp.label = $2
     WHERE fl.source = 'human' AND fl.frame_key = ANY($1::text[])`,
    [keys, label],
  );
  return r.rows;
}
