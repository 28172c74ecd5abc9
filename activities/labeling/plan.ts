/**
 * Which representatives go to people, in which order, with which pre-annotations: pure
 * functions of the dedupe manifest, the search, the split, earlier human labels and the
 * model's predictions.
 */
import { NEGATIVE_LABEL, type LabelledFrame, type PredictionsFile, type Split } from '../../contracts';
import type { LsImportTask, LsResult } from '../../lib/label-studio';
import { CHOICES_NAME, IMAGE_NAME } from './project';

/** A representative people are asked about. */
export interface PlannedFrame {
  key: string;
  videoId: string;
  timestampS: number | null;
  split: Split;
  /** Distinct people needed: `validationAnnotators` on validation frames, 1 on training frames. */
  required: number;
  weakLabel: string;
  weakConfidence: number;
  model: { label: string; score: number; margin: number } | null;
  /** 0..1, higher first: 1 − the model's margin between its top two classes, or 1 − the weak label's confidence without a model. */
  uncertainty: number;
  /**
   * Set when the guess (`weakLabel`) is `other` on exclusion evidence: `frameKey` (of the
   * cluster) is a positive `label` of `runLabel` by `source` in run `workflowId`, and the
   * taxonomy says that label excludes this one.
   */
  evidence?: { frameKey: string; label: string; runLabel: string; source: 'human' | 'weak'; workflowId: string };
  /** Label Studio task id, once the task exists. */
  taskId?: number;
}

/** The labelling plan of a run (`runs/<run>/label/plan.json`): what went to people and what was inherited. */
export interface LabelingPlan {
  workflowId: string;
  label: string;
  projectId: number;
  projectUrl: string;
  choices: string[];
  frames: PlannedFrame[];
  /** Representatives a person already labelled in an earlier run (not sent again). */
  inherited: LabelledFrame[];
  model: { name: string; version: number } | null;
}

/**
 * Uncertainty of a frame for ordering (uncertainty sampling by margin, Scheffer et al.
 * 2001): with a model, 1 − (p1 − p2) of its two most probable classes; without one,
 * 1 − the weak label's confidence (title matches, 0.7, before catalog labels, 1).
 */
export function uncertaintyOf(weakConfidence: number, model: { margin: number } | null): number {
  const u = model ? 1 - model.margin : 1 - weakConfidence;
  return Math.min(1, Math.max(0, u));
}

/** Most uncertain first; ties by video and frame key (stable across retries). */
export function orderForPeople<T extends Pick<PlannedFrame, 'uncertainty' | 'key'>>(frames: readonly T[]): T[] {
  return [...frames].sort((a, b) => b.uncertainty - a.uncertainty || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The model's prediction for a frame, when it is one of the project's choices. */
export function modelPrediction(p: PredictionsFile | undefined, key: string, choices: readonly string[]): PlannedFrame['model'] {
  const f = p?.frames[key];
  return f && choices.includes(f.label) ? f : null;
}

function choiceResult(choice: string): LsResult[] {
  return [{ from_name: CHOICES_NAME, to_name: IMAGE_NAME, type: 'choices', value: { choices: [choice] } }];
}

/**
 * The hint line above the frame: what the search (or the exclusion evidence) and the model say.
 *
 * @example hintOf({ weakLabel: 'other', weakConfidence: 1, model: null, evidence: { label: 'street', runLabel: 'street', source: 'human', ... } }, 'office')
 *   // 'Search: people labelled it "street", which excludes "office" · no model yet'
 */
export function hintOf(f: Pick<PlannedFrame, 'weakLabel' | 'weakConfidence' | 'model' | 'evidence'>, label: string): string {
  const search = f.evidence
    ? `${f.evidence.source === 'human' ? 'people labelled it' : 'its catalog label is'} "${f.evidence.label}", which excludes "${label}"`
    : f.weakLabel === NEGATIVE_LABEL
      ? `a video without "${label}"`
      : f.weakConfidence < 1
        ? `title mentions "${label}"`
        : `catalog says "${label}"`;
  const model = f.model ? `model: ${f.model.label} (${Math.round(f.model.score * 100)}%)` : 'no model yet';
  return `Search: ${search} · ${model}`;
}

/**
 * The Label Studio task of a planned frame: the image as an `s3://` URI (Label Studio
 * resolves it through its S3 storage and streams the bytes; no credential or presigned
 * URL reaches the browser), the frame key, video, timestamp and run id, and the
 * pre-annotations: the weak label (`model_version: weak-search`: `other` on exclusion
 * evidence, with the evidence in `data.evidence`) and, when there is one, the published
 * model's prediction with its score.
 */
export function taskOf(f: PlannedFrame, run: { workflowId: string; label: string; bucket: string; modelVersion: string | null }): LsImportTask {
  const predictions: NonNullable<LsImportTask['predictions']> = [{ model_version: 'weak-search', score: f.weakConfidence, result: choiceResult(f.weakLabel) }];
  if (f.model && run.modelVersion) predictions.push({ model_version: run.modelVersion, score: f.model.score, result: choiceResult(f.model.label) });
  return {
    data: {
      image: `s3://${run.bucket}/${f.key}`,
      frameKey: f.key,
      videoId: f.videoId,
      timestampS: f.timestampS,
      runId: run.workflowId,
      split: f.split,
      weakLabel: f.weakLabel,
      modelLabel: f.model?.label ?? null,
      modelScore: f.model ? Number(f.model.score.toFixed(4)) : null,
      uncertainty: Number(f.uncertainty.toFixed(4)),
      hint: hintOf(f, run.label),
      ...(f.evidence ? { evidence: `${f.evidence.label} (${f.evidence.source}, ${f.evidence.runLabel})` } : {}),
    },
    predictions,
  };
}
