/**
 * What both dataset builders share (the run's dataset, `buildDataset`, and the label's
 * cumulative one, `buildLabelDataset`): counts per split, taxonomy paths, and the
 * version allocated once per run.
 */
import type { Pool } from 'pg';
import type { DatasetManifest, Split } from '../../contracts';
import { withTransaction } from '../../lib/db';
import { repos } from '../../lib/repositories';

/** Frames per label and split; every label present in both splits (0 when none). */
export function countsOf(labels: string[], frames: Array<{ label: string; split: Split }>): DatasetManifest['counts'] {
  const counts: DatasetManifest['counts'] = { train: {}, validation: {} };
  for (const s of ['train', 'validation'] as const) for (const l of labels) counts[s][l] = 0;
  for (const f of frames) counts[f.split][f.label] = (counts[f.split][f.label] ?? 0) + 1;
  return counts;
}

/** Video ids per split, sorted. */
export function videosOf(splitOf: Map<string, Split>): DatasetManifest['videos'] {
  const videos: DatasetManifest['videos'] = { train: [], validation: [] };
  for (const [id, s] of [...splitOf.entries()].sort()) videos[s].push(id);
  return videos;
}

/** Taxonomy path of each label, root first (`labels` rows; a label not in the taxonomy is its own path). */
export async function taxonomyPaths(pool: Pool, labels: string[]): Promise<Record<string, string[]>> {
  const taxonomy: Record<string, string[]> = {};
  for (const l of labels) {
    const path = await repos.labels.pathFromRoot(pool, l);
    taxonomy[l] = path.length ? path : [l];
  }
  return taxonomy;
}

/**
 * The dataset version of a run: allocated once (the next version of `name`, under an
 * advisory lock), so a retried attempt gets the same one.
 */
export async function allocateVersion(pool: Pool, name: string, workflowId: string, counts: DatasetManifest['counts']): Promise<number> {
  return withTransaction(pool, (c) => repos.datasets.allocateVersion(c, name, workflowId, counts));
}

/**
 * Videos of the label's fixed evaluation set (`eval_set_videos`, `reelset evalset grow`):
 * no dataset version of the label trains or validates on them, so every model's numbers
 * on that set stay those of unseen videos.
 */
export async function evaluationSetVideos(pool: Pool, label: string): Promise<Set<string>> {
  return repos.evalSets.videos(pool, label);
}

/** A warning for the frames the evaluation set kept out of a dataset, or none. */
export function evaluationSetWarning(frames: Array<{ videoId: string }>, reserved: Set<string>): string[] {
  const out = frames.filter((f) => reserved.has(f.videoId));
  return out.length ? [`${out.length} labelled frame(s) of ${new Set(out.map((f) => f.videoId)).size} video(s) of the label's evaluation set left out`] : [];
}
