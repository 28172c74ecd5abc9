/**
 * The native TensorFlow backend (tfjs-node built by infra/install.sh against PyPI
 * TensorFlow's C library): chosen automatically and logged, wasm when it is missing, and
 * fine-tuning the top of the student's EfficientNet-Lite0 on real frames. Runs
 * test/helpers/native-training.ts in child processes: inside jest's vm realm tfjs-node's
 * native typed arrays fail tfjs's instanceof checks.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

jest.setTimeout(180_000);

const ROOT = path.resolve(__dirname, '../..');

function run(args: string[], env: Record<string, string> = {}): Record<string, unknown> {
  let stdout: string;
  try {
    stdout = execFileSync(process.execPath, [require.resolve('tsx/cli'), path.join(ROOT, 'test/helpers/native-training.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`native-training.ts failed:\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

describe('training backend', () => {
  it('picks tfjs-node (TensorFlow from the PyPI wheel) automatically and logs it', () => {
    const r = run(['auto', 'select-only']);
    if (r['backend'] !== 'tensorflow')
      throw new Error(`tfjs-node did not load (backend ${String(r['backend'])}): run infra/install.sh; log: ${JSON.stringify(r['log'])}`);
    expect(r['native']).toMatchObject({ package: '@tensorflow/tfjs-node', gpu: false });
    expect(String((r['native'] as { tensorflowVersion: string }).tensorflowVersion)).toMatch(/^2\.\d+\.\d+/);
    expect(String((r['log'] as { msg: string }).msg)).toContain('TensorFlow.js backend: tensorflow');
  });

  it('falls back to wasm when tfjs-node is missing, saying why', () => {
    const r = run(['auto', 'select-only'], { REELSET_TFJS_NODE_DIR: path.join(ROOT, '.data', 'no-such-dir') });
    expect(r['backend']).toBe('wasm');
    const log = r['log'] as { skipped: string[]; msg: string };
    expect(log.msg).toBe('TensorFlow.js backend: wasm');
    expect(log.skipped.join('\n')).toMatch(/tensorflow: @tensorflow\/tfjs-node is not installed/);
  });
});

describe('student fine-tuning (tfjs-node)', () => {
  let r: Record<string, unknown>;
  beforeAll(() => {
    r = run(['tensorflow']);
  });

  it('trains the top of EfficientNet-Lite0 (its last block and the head convolution) with the head', () => {
    expect(r['convGradients']).toBe(true);
    expect(r['fineTuneFrom']).toBe('block15_expand_conv');
    expect(r['trunkInputShape']).toEqual([7, 7, 192]);
    // block15 expand / depthwise / project kernels, the head convolution's kernel, and four batch norms' gamma and beta.
    expect(r['trunkParams']).toBe(12);
    expect(r['trunkChanged']).toBe(12);
    expect((r['fineTuneLoss'] as number[]).every(Number.isFinite)).toBe(true);
    expect(r['headChangedPredictions']).toBeGreaterThan(1e-3);
  });

  it('resumes from a checkpoint with bit-identical weights (backbone top, head and Adam state)', () => {
    expect(r['identicalResume']).toBe(true);
  });

  it('publishes one image model whose probabilities equal the trunk and head on the activations', () => {
    expect(r['publishedInput']).toEqual([null, 224, 224, 3]);
    expect(r['publishedOutput']).toEqual([null, 3]);
    expect(r['publishedImagenetOutput']).toEqual([null, 1000]);
    expect(r['publishedWeightsPaths']).toEqual(['weights.bin']);
    expect(r['imageVsTrunkMaxDiff']).toBeLessThan(1e-5);
    // EfficientNet-Lite0 with its ImageNet classifier (4.69 M float32 parameters, batch-norm statistics included) and the head.
    expect(r['publishedBytes']).toBeGreaterThan(18_500_000);
    expect(r['publishedBytes']).toBeLessThan(19_500_000);
  });
});

describe('teacher whole-backbone fine-tuning (tfjs-node, tiny configuration)', () => {
  let r: Record<string, unknown>;
  beforeAll(() => {
    r = run(['tensorflow', 'teacher-whole']);
  });

  it('trains every convolution and batch normalisation of EfficientNet-Lite0 with SGD, momentum and CutMix', () => {
    expect(r['wholeFineTuneFrom']).toBe('stem_conv');
    expect(r['wholeInputShape']).toEqual([224, 224, 3]);
    // 16 blocks' convolutions and batch norms, the stem and the head convolution: every trainable weight below `features`.
    expect(r['wholeParams']).toBeGreaterThan(140);
    expect(r['wholeChanged']).toBe(r['wholeParams']);
    const loss = r['wholeLoss'] as number[];
    expect(loss).toHaveLength(2);
    expect(loss.every(Number.isFinite)).toBe(true);
    expect(r['wholeHyper']).toMatchObject({
      learningRate: 0.01,
      momentum: 0.9,
      batchSize: 6,
      cutmixProbability: 1,
      labelSmoothing: 0.1,
      classBalanced: true,
      wholeBackbone: true,
    });
  });

  it('resumes from a checkpoint with bit-identical weights (momentum, cosine schedule and CutMix draws by step)', () => {
    expect(r['wholeIdenticalResume']).toBe(true);
  });

  it('publishes an image model that gives the checkpoint model probabilities, with the ImageNet logits beside them', () => {
    expect(r['wholePublishedOutputs']).toEqual([
      [null, 3],
      [null, 1000],
    ]);
    expect(r['wholePublishedVsCheckpoint']).toBeLessThan(1e-5);
  });

  it('cross-fits by video from the ImageNet weights each fold, for out-of-fold targets and a calibration', () => {
    expect(r['wholeCalibration']).toMatchObject({ folds: 2, videos: 6 });
    expect(r['wholeOutOfFoldFinite']).toBe(true);
    expect(r['wholeFoldsRestart']).toBe(true);
  });
});
