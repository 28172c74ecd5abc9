/**
 * Backbones on ONNX Runtime (`onnxruntime-node`): opening a session on a converted file
 * (found by `findBackboneFiles` in `backbones.ts`, its bytes checked against the sha256
 * its provenance records) on the CPU or, when its libraries are installed, the CUDA
 * execution provider.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { sha256File } from '../../lib/hash';
import type { BackboneFiles } from './backbones';

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
export async function openOnnxSession(found: Pick<BackboneFiles, 'onnx' | 'provenance'>, opts: OpenSessionOptions): Promise<OnnxSession> {
  const file = found.onnx;
  const actual = await sha256File(file);
  if (actual !== found.provenance.onnxSha256) {
    throw new Error(
      `${file}: sha256 ${actual.slice(0, 12)} differs from its provenance (${found.provenance.onnxSha256.slice(0, 12)}); reconvert with infra/convert-backbones.ts`,
    );
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
      const session = await ort.InferenceSession.create(file, { ...base, executionProviders: ['cuda'] });
      return { session, provider: 'cuda' };
    } catch (err) {
      const why = err instanceof Error ? err.message.split('\n')[0]! : String(err);
      if (opts.provider === 'cuda') throw new Error(`CUDA execution provider did not start: ${why}`);
      fallback = `cuda: ${why}`;
    }
  } else if (opts.provider === 'auto') {
    fallback = 'cuda: libonnxruntime_providers_cuda.so not installed (infra/install-gpu.sh)';
  }
  const session = await ort.InferenceSession.create(file, { ...base, executionProviders: ['cpu'] });
  return { session, provider: 'cpu', fallback };
}
