/**
 * The persistent near-duplicate index of a label: what earlier runs for the label have
 * already seen, so that a new run sends only new content on to labelling.
 *
 * Stored as append-only segments, one per run: the embeddings of the frames the run
 * added, packed in S3 (`dedupe-index/<label>/<model key>/<run>.f32` + `.json`), listed in
 * the Postgres table `dedupe_segments` (label, model key, workflow id). A run reads every
 * earlier segment of its label and model, and after clustering writes its own. Writing is
 * idempotent (same keys, `ON CONFLICT DO UPDATE`), so a retried attempt is harmless. The
 * HNSW graph itself is not persisted: it is rebuilt from the vectors on each run (an n log n
 * build, see `ann.ts`), which keeps the stored form simple and independent of index parameters.
 */
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { dedupeSegmentBase, MissingArtifactError } from '../../contracts';
import { float32Bytes, toFloat32 } from '../../lib/vectors';

/** Rows of one label's earlier runs. */
export interface LabelIndexRows {
  /** rows * dim floats. */
  vectors: Float32Array;
  keys: string[];
  videoIds: string[];
  pixelHashes: string[];
  /** Segments read (one per earlier run). */
  segments: number;
}

interface SegmentIndex {
  keys: string[];
  videoIds: string[];
  pixelHashes: string[];
}

/**
 * Read every segment of `label` and `modelKey` written by runs other than `workflowId`.
 * A frame key present in several segments is kept once.
 * @throws MissingArtifactError when a listed segment is missing in S3.
 */
export async function readLabelIndex(
  deps: Pick<ActivityDeps, 'store' | 'pool'>,
  label: string,
  modelKey: string,
  dim: number,
  workflowId: string,
): Promise<LabelIndexRows> {
  const segments = await repos.dedupeSegments.ofLabel(deps.pool, label, modelKey, workflowId);
  const parts: Float32Array[] = [];
  const out: Omit<LabelIndexRows, 'vectors'> = { keys: [], videoIds: [], pixelHashes: [], segments: segments.length };
  const seen = new Set<string>();
  for (const row of segments) {
    const [buf, idx] = await Promise.all([deps.store.get(row.vectors_key), deps.store.getJson<SegmentIndex>(row.index_key)]);
    if (!buf || !idx)
      throw new MissingArtifactError(deps.store.uri(buf ? row.index_key : row.vectors_key), `dedupe index segment of label ${JSON.stringify(label)}`);
    const v = toFloat32(buf);
    idx.keys.forEach((k, i) => {
      if (seen.has(k)) return;
      seen.add(k);
      out.keys.push(k);
      out.videoIds.push(idx.videoIds[i]!);
      out.pixelHashes.push(idx.pixelHashes[i]!);
      parts.push(v.subarray(i * dim, (i + 1) * dim));
    });
  }
  const vectors = new Float32Array(out.keys.length * dim);
  parts.forEach((p, i) => vectors.set(p, i * dim));
  return { vectors, ...out };
}

/**
 * Write this run's segment: the rows given (the frames the run adds to the label's index).
 * Idempotent per (label, model, workflow).
 */
export async function writeLabelSegment(
  deps: Pick<ActivityDeps, 'store' | 'pool'>,
  label: string,
  modelKey: string,
  workflowId: string,
  rows: { vectors: Float32Array; keys: string[]; videoIds: string[]; pixelHashes: string[] },
): Promise<{ vectorsKey: string; indexKey: string }> {
  const base = dedupeSegmentBase(label, modelKey, workflowId);
  const vectorsKey = `${base}.f32`;
  const indexKey = `${base}.json`;
  await deps.store.put(vectorsKey, float32Bytes(rows.vectors));
  await deps.store.putJson(indexKey, { keys: rows.keys, videoIds: rows.videoIds, pixelHashes: rows.pixelHashes } satisfies SegmentIndex);
  await repos.dedupeSegments.record(deps.pool, { label, modelKey, workflowId, vectorsKey, indexKey, frames: rows.keys.length });
  return { vectorsKey, indexKey };
}
