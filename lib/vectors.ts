/**
 * Packed float32 vectors in S3: how embeddings are stored (`<base>.f32` rows, little
 * endian, plus a `.json` index), read back by the dedupe, dataset and training steps.
 */
import { MissingArtifactError, type EmbedStepManifest, type VectorIndex, type VectorRef } from '../contracts';
import type { ObjectStore } from './s3';

/** Decode a packed little-endian float32 buffer into a new, aligned `Float32Array`. */
export function toFloat32(buf: Buffer | Uint8Array): Float32Array {
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  return new Float32Array(copy.buffer);
}

/** The bytes of a `Float32Array` (no copy), for an S3 PUT. */
export function float32Bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Gather rows of packed vector files into one matrix (each file read once).
 *
 * @param refs `{key, row}` of each wanted row.
 * @param dim floats per row.
 * @returns `refs.length * dim` floats, row i = `refs[i]`.
 * @throws MissingArtifactError naming the vector file when one is missing.
 */
export async function gatherVectors(store: ObjectStore, refs: VectorRef[], dim: number): Promise<Float32Array> {
  const files = new Map<string, Float32Array>();
  for (const key of new Set(refs.map((r) => r.key))) {
    const buf = await store.get(key);
    if (!buf) throw new MissingArtifactError(store.uri(key), 'vector file (written by the embed step)');
    files.set(key, toFloat32(buf));
  }
  const out = new Float32Array(refs.length * dim);
  refs.forEach((r, i) => out.set(files.get(r.key)!.subarray(r.row * dim, (r.row + 1) * dim), i * dim));
  return out;
}

/** Key of the index (`.json`) beside a packed vector file (`.f32`). */
export function indexKeyOf(vectorsKey: string): string {
  return vectorsKey.replace(/\.f32$/, '.json');
}

/**
 * Gather raw backbone features (what the classifier heads take): the packed unit rows
 * times the norms their index records (`VectorIndex.norms`).
 *
 * @returns `refs.length * dim` floats.
 * @throws MissingArtifactError when a vector file or its index is missing, or the index has no norms (a pack from before they were kept: rerun the step that made it).
 */
export async function gatherFeatures(store: ObjectStore, refs: VectorRef[], dim: number): Promise<Float32Array> {
  const out = await gatherVectors(store, refs, dim);
  const norms = new Map<string, number[]>();
  for (const key of new Set(refs.map((r) => r.key))) {
    const idx = await store.getJson<VectorIndex>(indexKeyOf(key));
    if (!idx || !Array.isArray(idx.norms)) throw new MissingArtifactError(store.uri(indexKeyOf(key)), 'vector index with norms (written by embedPacks)');
    norms.set(key, idx.norms);
  }
  refs.forEach((r, i) => {
    const norm = norms.get(r.key)![r.row]!;
    for (let k = i * dim; k < (i + 1) * dim; k++) out[k] = out[k]! * norm;
  });
  return out;
}

/** Every vector of an embed step, in one matrix. */
export interface RunVectors {
  /** n * dim floats, row-major, rows L2-normalised. */
  vectors: Float32Array;
  dim: number;
  /** Frame key of each row. */
  keys: string[];
  /** Video id of each row. */
  videoIds: string[];
  /** Pixel hash of each row's frame. */
  pixelHashes: string[];
  /** Row of each frame key. */
  rowOf: Map<string, number>;
}

/**
 * Read every vector of an embed step into one matrix, in the manifest's video order.
 *
 * @throws MissingArtifactError when a pack named by the manifest is missing (the embed step must be rerun).
 */
export async function loadRunVectors(store: ObjectStore, manifest: Pick<EmbedStepManifest, 'summary' | 'videos'>): Promise<RunVectors> {
  const dim = manifest.summary.dim;
  const parts: Float32Array[] = [];
  const keys: string[] = [];
  const videoIds: string[] = [];
  const pixelHashes: string[] = [];
  for (const v of manifest.videos) {
    const [buf, idx] = await Promise.all([store.get(v.vectorsKey), store.getJson<VectorIndex>(v.indexKey)]);
    if (!buf || !idx) throw new MissingArtifactError(store.uri(buf ? v.indexKey : v.vectorsKey), `vectors of video ${v.videoId}`);
    parts.push(toFloat32(buf));
    keys.push(...idx.frameKeys);
    videoIds.push(...idx.frameKeys.map(() => v.videoId));
    pixelHashes.push(...idx.pixelHashes);
  }
  const vectors = new Float32Array(keys.length * dim);
  let off = 0;
  for (const p of parts) {
    vectors.set(p, off);
    off += p.length;
  }
  return { vectors, dim, keys, videoIds, pixelHashes, rowOf: new Map(keys.map((k, i) => [k, i])) };
}
