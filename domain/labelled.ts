/**
 * "Everything labelled so far" for a label, and the one rule by which a label's runs read
 * earlier labels: **a label's data is its own**. A run reads labels only from runs of its
 * own label, never a model's label, and `other` never crosses from one label to another.
 *
 * Frames are content-addressed and shared by every run, so `frame_labels` holds, for one
 * frame, the labels of many labels' runs (a cartoon run's `other` means "not cartoon" and
 * says nothing of `person`). Every read here goes through the label's runs
 * ({@link labelRunIds}) and through {@link keepLabelRow}, which also drops what an earlier
 * version of the label step copied across labels (issue 17): the repair is a read-time
 * rule, so it needs no data migration, applies to every later dataset, and follows the
 * taxonomy as it is now.
 *
 * Users: the retrain's plan (the fingerprint of the label's labels) and the label's
 * cumulative dataset ({@link labelledFrames}), the weak label step and the dedupe step
 * (what a seen cluster inherits, {@link ownLabels}), and the exclusion evidence of the
 * taxonomy ({@link exclusionEvidence}).
 */
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { NEGATIVE_LABEL, type LabelSource } from '../contracts';
import { resolveVotes, type Vote } from './agreement';
import { repos } from '../lib/repositories';
import type { LabelOrigin } from '../lib/repositories/frame-labels';
import { loadTaxonomy, type Taxonomy } from './taxonomy';

/** One labelled frame: its best label among the label's runs. */
export interface LabelledFrameRow {
  frameKey: string;
  videoId: string;
  label: string;
  /** `human` or `weak` (a model's label is never a training label). */
  source: LabelSource;
  confidence: number;
  /** Run whose label was chosen (for a human majority, the run of its latest vote). */
  workflowId: string;
}

/** Where a stored weak label came from (`frame_labels.origin`; null: before issue 17, or a human label). */
export type { LabelOrigin };

/** A `frame_labels` row of one of the label's runs, with what {@link keepLabelRow} needs to judge it. */
export interface StoredLabelRow {
  frameKey: string;
  videoId: string;
  workflowId: string;
  label: string;
  source: LabelSource;
  confidence: number;
  annotator: string | null;
  annotationId: number | null;
  createdAt: Date;
  updatedAt: Date;
  origin: LabelOrigin | null;
  /** Inherited or evidence rows: the run, frame and label the row was derived from. */
  inheritedFrom: string | null;
  inheritedKey: string | null;
  inheritedLabel: string | null;
  /** The catalog (`video_labels`) gives the frame's video the label or a descendant, or a run of the label searched it as a positive (`label_videos`). */
  videoCarriesLabel: boolean;
  /** The label `inheritedFrom` was recorded with (`runs.label`, maybe a synonym); null when there is no such run. */
  sourceRunLabel: string | null;
  /** The row named by `inheritedFrom`, `inheritedKey`, `inheritedLabel` is still in `frame_labels` (not a model label). */
  sourceRowExists: boolean;
}

/** What {@link keepLabelRow} judges a row against. */
export interface LabelRuleContext {
  /** The canonical label whose data is read. */
  label: string;
  taxonomy: Taxonomy;
  /** The label's runs ({@link labelRunIds}). */
  runIds: ReadonlySet<string>;
}

/** Why {@link keepLabelRow} left a row out (counted in summaries). */
export type DropReason = 'model-label' | 'another-label' | 'inherited-from-another-label' | 'evidence-not-valid' | 'other-on-a-video-of-the-label';

/**
 * Whether a stored row of one of the label's runs may be read as a label of it. Pure.
 *
 * Kept: human and weak labels that are the label, one of its descendants or `other`, and
 * - `inherited` rows copied from a run of the same label;
 * - `evidence` rows (`other`) whose source row still exists and is a positive of a label
 *   the taxonomy says excludes this one (the source run's label family holds it);
 * - other rows (`own`, and rows written before provenance was recorded) unless they are a
 *   weak `other` on a frame of a video that carries the label (catalog or retrain ledger).
 *
 * What this can and cannot know of rows written before provenance was recorded (origin
 * null): a copied label of another label (`game-cinematic` in a `person` run) and a copied
 * model label are provably not the run's own and are dropped; a copied `other` is
 * provably wrong where the frame's video carries the label (a run of the label takes
 * such a video as a positive, so its own weak label there is the label) and is dropped
 * there. A copied `other` on a frame of a video that does not carry the label cannot be
 * told from the run's own weak `other` (the video was a negative of the run, or a title
 * match the ledger has not recorded): it is kept, and it says what the run's own weak
 * label would have said of a negative video. A same-label copy is kept (it is the label's
 * own). A human label of the label's runs is always its own (Label Studio project of the
 * label) and only dropped when it is no longer one of the label's choices.
 */
export function keepLabelRow(row: StoredLabelRow, ctx: LabelRuleContext): { keep: true } | { keep: false; reason: DropReason } {
  const { taxonomy, label } = ctx;
  if (row.source === 'model') return { keep: false, reason: 'model-label' };
  if (row.label !== NEGATIVE_LABEL && !taxonomy.family(label).includes(row.label)) return { keep: false, reason: 'another-label' };
  if (row.origin === 'inherited') {
    return row.inheritedFrom !== null && ctx.runIds.has(row.inheritedFrom) ? { keep: true } : { keep: false, reason: 'inherited-from-another-label' };
  }
  if (row.origin === 'evidence') {
    const runLabel = row.sourceRunLabel === null ? null : taxonomy.canonical(row.sourceRunLabel);
    const valid =
      row.label === NEGATIVE_LABEL &&
      row.sourceRowExists &&
      runLabel !== null &&
      row.inheritedLabel !== null &&
      row.inheritedLabel !== NEGATIVE_LABEL &&
      taxonomy.family(runLabel).includes(row.inheritedLabel) &&
      taxonomy.excludes(label, row.inheritedLabel);
    return valid ? { keep: true } : { keep: false, reason: 'evidence-not-valid' };
  }
  if (row.source === 'weak' && row.label === NEGATIVE_LABEL && row.videoCarriesLabel) return { keep: false, reason: 'other-on-a-video-of-the-label' };
  return { keep: true };
}

/**
 * The best label of each frame among kept rows. Pure. People first: a frame with human
 * rows takes their strict majority (`resolveVotes`, each person's latest label counting
 * once, the rule of the label step); a frame people disagree on (no majority) is left out,
 * whatever weak label it has. Else the latest weak label (ties by workflow id).
 *
 * @param rows rows of any order.
 * @returns one row per frame, ordered by frame key.
 */
export function bestLabels(rows: readonly StoredLabelRow[]): LabelledFrameRow[] {
  const byFrame = new Map<string, StoredLabelRow[]>();
  for (const r of rows) byFrame.set(r.frameKey, [...(byFrame.get(r.frameKey) ?? []), r]);
  const out: LabelledFrameRow[] = [];
  for (const key of [...byFrame.keys()].sort()) {
    const group = byFrame.get(key)!;
    const frame = { frameKey: key, videoId: group[0]!.videoId };
    const human = group.filter((r) => r.source === 'human' && r.annotator !== null && r.annotationId !== null);
    if (human.length) {
      const votes: Vote[] = human.map((r) => ({
        annotator: r.annotator!,
        label: r.label,
        annotationId: r.annotationId!,
        updatedAt: r.updatedAt.toISOString(),
      }));
      const res = resolveVotes(votes, 1);
      if (res.status !== 'agreed') continue;
      const latest = human.reduce((a, b) => (b.updatedAt > a.updatedAt ? b : a));
      out.push({ ...frame, label: res.label, source: 'human', confidence: 1, workflowId: latest.workflowId });
      continue;
    }
    const weak = group.filter((r) => r.source === 'weak');
    if (!weak.length) continue;
    const best = weak.reduce((a, b) => (b.createdAt > a.createdAt || (+b.createdAt === +a.createdAt && b.workflowId < a.workflowId) ? b : a));
    out.push({ ...frame, label: best.label, source: 'weak', confidence: best.confidence, workflowId: best.workflowId });
  }
  return out;
}

/**
 * Workflow ids of a label's runs: runs recorded with the label or one of its synonyms
 * (new-category, retrain) and runs that built a dataset named after it (a new-category run
 * started with a synonym records the synonym but names its dataset after the canonical
 * label). Batch predict runs (kind `batch-predict`) are left out: their `model` labels are
 * pre-annotations for people, never training labels of the label's datasets.
 *
 * @param label the canonical label.
 * @returns workflow ids, sorted.
 */
export async function labelRunIds(pool: Pool, label: string): Promise<string[]> {
  return repos.runs.idsOfLabel(pool, label);
}

/** Options of {@link labelRows}, {@link ownLabels} and {@link labelledFrames}. */
export interface LabelReadOptions {
  /** Only these frames (default: every frame the label's runs labelled). */
  keys?: readonly string[];
  /** A run to count as the label's even if it is not recorded with the label yet. */
  alsoRun?: string;
  /** A run whose rows are not read (the run reading: a retried attempt does not inherit from itself). */
  exceptRun?: string;
  /** The taxonomy, when the caller has it loaded (default: read from `labels`). */
  taxonomy?: Taxonomy;
}

/**
 * The rows of the label's runs that {@link keepLabelRow} keeps, and counts of the others.
 *
 * @param label the canonical label.
 * @returns kept rows (ordered by frame key) and the dropped rows counted by reason.
 * @throws the database's error when Postgres cannot be reached.
 */
export async function labelRows(
  pool: Pool,
  label: string,
  opts: LabelReadOptions = {},
): Promise<{ rows: StoredLabelRow[]; dropped: Partial<Record<DropReason, number>> }> {
  const taxonomy = opts.taxonomy ?? (await loadTaxonomy(pool));
  const runIds = new Set(await labelRunIds(pool, label));
  if (opts.alsoRun) runIds.add(opts.alsoRun);
  const read = [...runIds].filter((id) => id !== opts.exceptRun);
  if (!read.length || (opts.keys && !opts.keys.length)) return { rows: [], dropped: {} };
  const found = await repos.frameLabels.ofLabelRuns(pool, {
    label,
    runIds: read,
    family: taxonomy.family(label),
    keys: opts.keys ? [...new Set(opts.keys)] : null,
  });
  const ctx: LabelRuleContext = { label, taxonomy, runIds };
  const rows: StoredLabelRow[] = [];
  const dropped: Partial<Record<DropReason, number>> = {};
  for (const r of found) {
    const row: StoredLabelRow = {
      frameKey: r.frame_key,
      videoId: r.video_id,
      workflowId: r.workflow_id,
      label: r.label,
      source: r.source,
      confidence: r.confidence,
      annotator: r.annotator,
      annotationId: r.annotation_id === null ? null : Number(r.annotation_id),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      origin: r.origin,
      inheritedFrom: r.inherited_from,
      inheritedKey: r.inherited_key,
      inheritedLabel: r.inherited_label,
      videoCarriesLabel: r.carries,
      sourceRunLabel: r.source_run_label,
      sourceRowExists: r.source_row_exists,
    };
    const k = keepLabelRow(row, ctx);
    if (k.keep) rows.push(row);
    else dropped[k.reason] = (dropped[k.reason] ?? 0) + 1;
  }
  return { rows, dropped };
}

/**
 * The label's own best label of each frame (among `opts.keys`, or all): {@link labelRows}
 * then {@link bestLabels}. What a seen near-duplicate cluster inherits.
 *
 * @param label the canonical label.
 * @returns by frame key.
 */
export async function ownLabels(pool: Pool, label: string, opts: LabelReadOptions = {}): Promise<Map<string, LabelledFrameRow>> {
  const { rows } = await labelRows(pool, label, opts);
  return new Map(bestLabels(rows).map((r) => [r.frameKey, r]));
}

/**
 * The label's labelled frames: every frame a run of the label labelled, once, with the
 * best of its labels among those runs ({@link bestLabels} of the rows {@link keepLabelRow}
 * keeps). Ordered by frame key.
 *
 * @param label the canonical label.
 * @param alsoRun a run to include even if it is not recorded with the label yet.
 */
export async function labelledFrames(pool: Pool, label: string, alsoRun?: string): Promise<LabelledFrameRow[]> {
  return (await labelledFramesWithRepair(pool, label, alsoRun)).frames;
}

/**
 * {@link labelledFrames}, with the rows of the label's runs that were left out, counted by reason.
 *
 * @param label the canonical label.
 */
export async function labelledFramesWithRepair(
  pool: Pool,
  label: string,
  alsoRun?: string,
): Promise<{ frames: LabelledFrameRow[]; dropped: Partial<Record<DropReason, number>> }> {
  const { rows, dropped } = await labelRows(pool, label, { alsoRun });
  return { frames: bestLabels(rows), dropped };
}

/** A positive of an excluding label on a frame: evidence that the frame is `other` for the label read. */
export interface ExclusionEvidence {
  frameKey: string;
  videoId: string;
  /** The positive label given (the excluding label or one of its descendants). */
  label: string;
  /** The label whose run gave it (canonical). */
  runLabel: string;
  source: 'human' | 'weak';
  /** The run whose label it is. */
  workflowId: string;
}

/**
 * Positives, among `keys`, of the labels the taxonomy says `label` excludes: for each
 * label `B` with runs whose family holds an excluded label, `B`'s own best labels
 * ({@link ownLabels} of `B`: its own runs, its own repair) that are an excluded label.
 * `other` of `B` is never evidence of anything. People's labels come before weak ones.
 *
 * @param label the canonical label read for.
 * @returns by frame key; empty when the label excludes nothing.
 */
export async function exclusionEvidence(
  pool: Pool,
  label: string,
  keys: readonly string[],
  opts: { taxonomy?: Taxonomy } = {},
): Promise<Map<string, ExclusionEvidence>> {
  const out = new Map<string, ExclusionEvidence>();
  if (!keys.length) return out;
  const taxonomy = opts.taxonomy ?? (await loadTaxonomy(pool));
  const excluded = new Set(taxonomy.excludedBy(label));
  if (!excluded.size) return out;
  const runLabels = [...new Set((await repos.runs.labelsWithRuns(pool)).map((l) => taxonomy.canonical(l)))]
    .filter((b) => b !== label && taxonomy.family(b).some((l) => excluded.has(l)))
    .sort();
  const found: ExclusionEvidence[] = [];
  for (const b of runLabels) {
    for (const row of (await ownLabels(pool, b, { keys, taxonomy })).values()) {
      if (!excluded.has(row.label)) continue;
      found.push({
        frameKey: row.frameKey,
        videoId: row.videoId,
        label: row.label,
        runLabel: b,
        source: row.source === 'human' ? 'human' : 'weak',
        workflowId: row.workflowId,
      });
    }
  }
  for (const e of found.sort((a, b) => (a.source === b.source ? 0 : a.source === 'human' ? -1 : 1))) if (!out.has(e.frameKey)) out.set(e.frameKey, e);
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
