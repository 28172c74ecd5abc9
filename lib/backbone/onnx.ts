/**
 * Backbones on ONNX Runtime (`onnxruntime-node`): where the converted ONNX files are,
 * the provenance kept beside each one, and opening a session on the CPU or, when its
 * libraries are installed, the CUDA execution provider.
 *
 * Files: `<dir>/<backbone>.onnx` and `<dir>/<backbone>.onnx.json` (an
 * {@link OnnxProvenance}), made by `infra/convert-backbones.ts`. Looked up in
 * `REELSET_MODELS_DIR` (converted at install time) first, then in the checkout's
 * `backbones/` (MobileNetV2 is committed there). A file is used only when its
 * provenance names the weights of the installed nsfwjs package and its own sha256
 * matches, so a stale or foreign file is never mistaken for the backbone.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { sha256File } from '../hash';
import type { BackboneName, BackboneSpec } from './nsfwjs';

/** The checkout's `backbones/` folder (committed ONNX files). */
export const COMMITTED_BACKBONES_DIR = path.resolve(__dirname, '..', '..', 'backbones');

/** What `infra/convert-backbones.ts` records beside an ONNX file. */
export interface OnnxProvenance {
  backbone: BackboneName;
  /** Version of the `nsfwjs` npm package the weights came from. */
  nsfwjsVersion: string;
  /** sha256 of nsfwjs's (quantised) weight bytes, as in the model id. */
  weightsSha256: string;
  featureLayer: string;
  /** Input `pixels`: `[N, size, size, 3]`, NHWC, uint8 RGB; the graph divides by 255 (the network sees [0, 1]). */
  input: { name: string; size: number };
  /** Output `[N, dim]`: the raw (not normalised) feature layer. */
  output: { name: string; dim: number };
  /** sha256 of the `.onnx` file. */
  onnxSha256: string;
  onnxBytes: number;
  /** The converter: the scripts and the pinned PyPI packages that ran. */
  converter: { scripts: string[]; python: string; tensorflow: string; tf2onnx: string; onnx: string; numpy: string; opset: number };
  /** The conversion's own check against tfjs (wasm) on random images. */
  check: { images: number; maxAbsDiff: number; minCosine: number; against: string };
  /** Seconds the conversion took (conversion and check). */
  seconds: number;
  createdAt: string;
}

/** An ONNX backbone found on disk. */
export interface OnnxBackboneFile {
  file: string;
  provenance: OnnxProvenance;
}

/**
 * Find the ONNX file of a backbone whose provenance matches the installed nsfwjs weights.
 *
 * @param dirs folders to look in, in order (e.g. `[REELSET_MODELS_DIR, COMMITTED_BACKBONES_DIR]`).
 * @param weightsSha256 sha256 of the installed nsfwjs weights.
 * @returns the first match, or `{ reasons }` saying why each candidate was rejected.
 */
export function findOnnxBackbone(spec: BackboneSpec, dirs: string[], weightsSha256: string): OnnxBackboneFile | { reasons: string[] } {
  const reasons: string[] = [];
  for (const dir of dirs) {
    const file = path.join(dir, `${spec.name}.onnx`);
    const meta = `${file}.json`;
    if (!existsSync(file) || !existsSync(meta)) {
      reasons.push(`${file}: not there`);
      continue;
    }
    let provenance: OnnxProvenance;
    try {
      provenance = JSON.parse(readFileSync(meta, 'utf8')) as OnnxProvenance;
    } catch (err) {
      reasons.push(`${meta}: not JSON (${err instanceof Error ? err.message : String(err)})`);
      continue;
    }
    if (provenance.weightsSha256 !== weightsSha256) {
      reasons.push(`${file}: converted from nsfwjs weights ${provenance.weightsSha256?.slice(0, 12)}, installed ${weightsSha256.slice(0, 12)}`);
      continue;
    }
    if (provenance.input?.name !== 'pixels' || provenance.input.size !== spec.inputSize || provenance.output?.dim !== spec.dim) {
      reasons.push(`${file}: input ${provenance.input?.name} ${provenance.input?.size} / output ${provenance.output?.dim}, expected pixels ${spec.inputSize} / ${spec.dim} (an older conversion: reconvert)`);
      continue;
    }
    return { file, provenance };
  }
  return { reasons };
}

/** Execution provider preference (`REELSET_ORT_PROVIDER`): `auto` is CUDA when its libraries load, else CPU. */
export type OrtProviderPreference = 'auto' | 'cpu' | 'cuda';

/** Options of {@link openOnnxSession}. */
export interface OpenSessionOptions {
  provider: OrtProviderPreference;
  /** Intra-op threads of the CPU provider (0: ONNX Runtime's default, one per core). */
  threads: number;
}

/** An open session and what it runs on. */
export interface OnnxSession {
  session: Ort.InferenceSession;
  /** `cpu` or `cuda`. */
  provider: 'cpu' | 'cuda';
  /** Why CUDA was not used, when `auto` fell back to the CPU. */
  fallback?: string;
}

/** Whether onnxruntime-node's binary folder holds the CUDA provider library (copied there by `infra/install-gpu.sh`). */
export function cudaProviderInstalled(): boolean {
  try {
    const bin = path.join(path.dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
    return existsSync(path.join(bin, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

/**
 * Open an ONNX Runtime session on a backbone file, after checking the file's sha256
 * against its provenance.
 *
 * `cuda` requires the CUDA execution provider (its library in onnxruntime-node's binary
 * folder and the CUDA runtime on the library path); `auto` tries it when the library is
 * there and falls back to the CPU, saying why.
 *
 * @throws Error when the file's sha256 differs from its provenance, or `cuda` was
 *   required and the provider does not start.
 */
export async function openOnnxSession(found: OnnxBackboneFile, opts: OpenSessionOptions): Promise<OnnxSession> {
  const actual = await sha256File(found.file);
  if (actual !== found.provenance.onnxSha256) {
    throw new Error(`${found.file}: sha256 ${actual.slice(0, 12)} differs from its provenance (${found.provenance.onnxSha256.slice(0, 12)}); reconvert with infra/convert-backbones.ts`);
  }
  const ort = require('onnxruntime-node') as typeof Ort;
  const base: Ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    ...(opts.threads > 0 ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    // No busy-waiting between parallel sections: the cores are shared with the frames'
    // decoding (libuv threads), the worker and, on small machines, the local services.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
  let fallback: string | undefined;
  if (opts.provider === 'cuda' || (opts.provider === 'auto' && cudaProviderInstalled())) {
    try {
      const session = await ort.InferenceSession.create(found.file, { ...base, executionProviders: ['cuda'] });
      return { session, provider: 'cuda' };
    } catch (err) {
      const why = err instanceof Error ? err.message.split('\n')[0]! : String(err);
      if (opts.provider === 'cuda') throw new Error(`CUDA execution provider did not start: ${why}`);
      fallback = `cuda: ${why}`;
    }
  } else if (opts.provider === 'auto') {
    fallback = 'cuda: libonnxruntime_providers_cuda.so not installed (infra/install-gpu.sh)';
  }
  const session = await ort.InferenceSession.create(found.file, { ...base, executionProviders: ['cpu'] });
  return { session, provider: 'cpu', fallback };
}
