/**
 * "Everything labelled so far" for a label: the frames the label's runs labelled, each
 * with its best label, and a fingerprint of that set. The retrain's plan compares the
 * fingerprint with the one of the dataset its published model was trained on (a change
 * means new or changed labels, people's included); the label dataset builder records it.
 */
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import type { LabelSource } from '../contracts';
import { resolveVotes, type Vote } from './agreement';

/** One labelled frame: its best label among the label's runs. */
export interface LabelledFrameRow {
  frameKey: string;
  videoId: string;
  label: string;
  source: LabelSource;
  confidence: number;
  /** Run whose label was chosen. */
  workflowId: string;
}

/**
 * Workflow ids of a label's runs: runs recorded with the label (new-category, retrain)
 * and runs that built a dataset named after it (a new-category run started with a
 * synonym records the synonym but names its dataset after the canonical label).
 * Batch predict runs (kind `batch-predict`) are left out: their `model` labels are
 * pre-annotations for people, never training labels of the label's datasets.
 *
 * @returns workflow ids, sorted.
 */
export async function labelRunIds(pool: Pool, label: string): Promise<string[]> {
  const res = await pool.query<{ workflow_id: string }>(
    `SELECT workflow_id FROM runs WHERE label = $1 AND kind <> 'batch-predict' UNION SELECT workflow_id FROM datasets WHERE name = $1 ORDER BY 1`,
    [label],
  );
  return res.rows.map((r) => r.workflow_id);
}

/**
 * The label's labelled frames: every frame a run of the label labelled (`frame_labels`
 * rows of those runs), once, with the best of its labels among those runs. People first:
 * a frame with human labels (one row per person, `source = 'human'`) takes their strict
 * majority (`resolveVotes` of `lib/agreement.ts`, each person's latest label counting
 * once, as the label step and the run's dataset do); a frame people disagree on (no
 * majority) is left out, whatever weak or model label it has. Else the model's label,
 * else the weak one, the latest first. Ordered by frame key.
 *
 * @param alsoRun a run to include even if it is not recorded with the label yet.
 */
export async function labelledFrames(pool: Pool, label: string, alsoRun?: string): Promise<LabelledFrameRow[]> {
  const res = await pool.query<{
    frame_key: string; video_id: string; label: string; source: LabelSource; confidence: number; workflow_id: string;
    annotator: string | null; annotation_id: string | null; updated_at: Date;
  }>(
    `WITH lr AS (SELECT workflow_id FROM runs WHERE label = $1 AND kind <> 'batch-predict'
                 UNION SELECT workflow_id FROM datasets WHERE name = $1
                 UNION SELECT $2::text WHERE $2::text IS NOT NULL)
     SELECT fl.frame_key, f.video_id, fl.label, fl.source, fl.confidence, fl.workflow_id, fl.annotator, fl.annotation_id, fl.updated_at
       FROM frame_labels fl JOIN lr ON lr.workflow_id = fl.workflow_id JOIN frames f ON f.s3_key = fl.frame_key
      ORDER BY fl.frame_key, CASE fl.source WHEN 'human' THEN 0 WHEN 'model' THEN 1 ELSE 2 END, fl.created_at DESC, fl.workflow_id`,
    [label, alsoRun ?? null],
  );
  const out: LabelledFrameRow[] = [];
  for (let i = 0; i < res.rows.length; ) {
    let j = i;
    while (j < res.rows.length && res.rows[j]!.frame_key === res.rows[i]!.frame_key) j++;
    const rows = res.rows.slice(i, j);
    i = j;
    const best = rows[0]!;
    const frame = { frameKey: best.frame_key, videoId: best.video_id };
    const human = rows.filter((r) => r.source === 'human' && r.annotator !== null && r.annotation_id !== null);
    if (human.length) {
      const votes: Vote[] = human.map((r) => ({ annotator: r.annotator!, label: r.label, annotationId: Number(r.annotation_id), updatedAt: r.updated_at.toISOString() }));
      const r = resolveVotes(votes, 1);
      if (r.status !== 'agreed') continue;
      const latest = human.reduce((a, b) => (b.updated_at > a.updated_at ? b : a));
      out.push({ ...frame, label: r.label, source: 'human', confidence: 1, workflowId: latest.workflow_id });
      continue;
    }
    out.push({ ...frame, label: best.label, source: best.source, confidence: best.confidence, workflowId: best.workflow_id });
  }
  return out;
}

/**
 * Fingerprint of a set of labelled frames: sha256 (hex) over the `key\tlabel\n` lines
 * sorted by key. Equal exactly when the same frames carry the same labels (the source and
 * confidence do not count: a weak label a person confirms changes nothing).
 */
export function labelsFingerprint(frames: Array<{ key: string; label: string }>): string {
  const lines = frames.map((f) => `${f.key}\t${f.label}\n`).sort();
  const h = createHash('sha256');
  for (const l of lines) h.update(l);
  return h.digest('hex');
}
