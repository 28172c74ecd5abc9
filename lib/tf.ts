/**
 * TensorFlow.js initialisation: picks and starts one backend per process.
 *
 * Every module that runs tensors gets its `tf` from {@link initTensorflow} (never from
 * a direct `import '@tensorflow/tfjs'` at run time), so that when `@tensorflow/tfjs-node`
 * or `@tensorflow/tfjs-node-gpu` is present its own tf instance (with the native
 * `tensorflow` backend registered) is the one used everywhere.
 */
import * as path from 'node:path';
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError } from '../contracts';
import { REELSET_ROOT, withDefaults } from './config';
import type { Logger } from './logger';

/** The tfjs namespace type (the API of `@tensorflow/tfjs`, which tfjs-node re-exports). */
export type Tf = typeof TfModule;

/**
 * Backend preference (the `REELSET_TF_BACKEND` setting).
 *
 * - `auto`: `tensorflow-gpu`, then `tensorflow`, then `wasm`, then `cpu`: the first that loads.
 * - `tensorflow-gpu`: native TensorFlow with CUDA (`@tensorflow/tfjs-node-gpu`, optional package).
 * - `tensorflow`: native TensorFlow on CPU (`@tensorflow/tfjs-node`, optional package).
 * - `wasm`: `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD when the runtime has it).
 * - `cpu`: the pure-JavaScript reference backend (slow; always available).
 */
export type TfBackendPreference = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** The result of {@link initTensorflow}: the backend name tfjs reports and the tf instance to use. */
export interface TfRuntime {
  /** `tf.getBackend()` after initialisation: `tensorflow`, `wasm` or `cpu`. */
  backend: string;
  /** For the native backends: the TensorFlow C library's version (`TF_Version`) and whether it was the GPU package. */
  native?: { package: string; tensorflowVersion: string; gpu: boolean };
  /** The tf namespace to call; the tfjs-node(-gpu) package itself when the native backend is used. */
  tf: Tf;
}

let initialised: Promise<TfRuntime> | undefined;
let initialisedWith: TfBackendPreference | undefined;

/**
 * Load and start a TensorFlow.js backend, once per process.
 *
 * Idempotent: the first call decides; later calls (whatever their preference) return the
 * same runtime, and log a warning when they asked for a different preference. Concurrent
 * first calls share one initialisation. A failed initialisation is not cached, so the
 * caller may retry with another preference.
 *
 * @param preference which backend to use; see {@link TfBackendPreference}.
 * @param logger optional pino logger; the choice (and each skipped candidate, at debug) is logged.
 * @returns the backend name and the tf instance to use for all tensor work.
 * @throws InvalidInputError when an explicitly requested backend cannot be loaded (for example
 *   `tensorflow-gpu` without `@tensorflow/tfjs-node-gpu` installed); never for `auto`, which ends at `cpu`.
 */
export function initTensorflow(preference: TfBackendPreference = 'auto', logger?: Logger): Promise<TfRuntime> {
  if (initialised) {
    if (preference !== initialisedWith) {
      logger?.warn({ requested: preference, initialisedWith }, 'TensorFlow.js already initialised with another preference; keeping the first');
    }
    return initialised;
  }
  initialisedWith = preference;
  const p = start(preference, logger);
  initialised = p;
  p.catch(() => {
    if (initialised === p) {
      initialised = undefined;
      initialisedWith = undefined;
    }
  });
  return p;
}

/** The runtime started by {@link initTensorflow} in this thread, or undefined when none was started (never starts one). */
export function tensorflowIfStarted(): Promise<TfRuntime> | undefined {
  return initialised;
}

type Candidate = Exclude<TfBackendPreference, 'auto'>;

async function start(preference: TfBackendPreference, logger?: Logger): Promise<TfRuntime> {
  const candidates: Candidate[] = preference === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [preference];
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      const runtime = await tryBackend(candidate);
      logger?.info(
        { preference, backend: runtime.backend, native: runtime.native, skipped: failures },
        `TensorFlow.js backend: ${runtime.backend}${runtime.native ? ` (${runtime.native.package}, TensorFlow ${runtime.native.tensorflowVersion})` : ''}`,
      );
      return runtime;
    } catch (err) {
      const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
      failures.push(`${candidate}: ${reason}`);
      logger?.debug({ candidate, reason }, 'TensorFlow.js backend unavailable');
    }
  }
  throw new InvalidInputError(`no TensorFlow.js backend could be started (${failures.join('; ')})`);
}

/** Require a module by a name computed at run time, so bundlers and tsc do not need it installed. */
function optionalRequire(name: string): unknown {
  return require(name);
}

/**
 * Where a native tfjs package is: the checkout's node_modules (a plain `npm install`),
 * then the prefix `infra/install.sh` builds it in (`REELSET_TFJS_NODE_DIR`, outside
 * node_modules so that `npm ci` never removes it; tfjs-node-gpu in its `gpu/` folder,
 * built by `infra/install-gpu.sh`).
 *
 * @returns the resolved entry file.
 * @throws Error listing where it looked when it is in neither.
 */
export function resolveNativeTfjs(pkg: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu', env: NodeJS.ProcessEnv = process.env): string {
  const prefix = withDefaults(env)['REELSET_TFJS_NODE_DIR']!;
  // tfjs-node in the prefix itself, tfjs-node-gpu in its gpu/ folder (infra/install-gpu.sh).
  const dirs = [REELSET_ROOT, prefix, path.join(prefix, 'gpu')];
  try {
    return require.resolve(pkg, { paths: dirs });
  } catch {
    throw new Error(`${pkg} is not installed (looked in ${dirs.map((d) => path.join(d, 'node_modules')).join(' and ')}; infra/install.sh builds it)`);
  }
}

async function tryBackend(candidate: Candidate): Promise<TfRuntime> {
  switch (candidate) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const pkg = candidate === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      // TensorFlow's C++ logging (CPU feature notes, device placement) off unless asked for.
      process.env['TF_CPP_MIN_LOG_LEVEL'] ??= '2';
      const tf = optionalRequire(resolveNativeTfjs(pkg)) as Tf;
      if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but the tensorflow backend did not start`);
      await tf.ready();
      const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
      return {
        backend: tf.getBackend(),
        tf,
        native: { package: pkg, tensorflowVersion: binding?.TF_Version ?? 'unknown', gpu: candidate === 'tensorflow-gpu' },
      };
    }
    case 'wasm': {
      const tf = optionalRequire('@tensorflow/tfjs') as Tf;
      const wasm = optionalRequire('@tensorflow/tfjs-backend-wasm') as {
        setWasmPaths: (prefix: string, usePlatformFetch?: boolean) => void;
      };
      // In Node the .wasm binaries are read from the package's dist directory.
      const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
      wasm.setWasmPaths(dist + path.sep);
      if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not start');
      await tf.ready();
      return { backend: tf.getBackend(), tf };
    }
    case 'cpu': {
      const tf = optionalRequire('@tensorflow/tfjs') as Tf;
      if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not start');
      await tf.ready();
      return { backend: tf.getBackend(), tf };
    }
  }
}
