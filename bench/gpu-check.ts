/**
 * The check a GPU worker machine runs after `infra/install-gpu.sh` (through
 * `bash infra/gpu-check.sh`): does training run on the GPU, and how much faster than on
 * the CPU; does ONNX Runtime's CUDA provider start, and how fast are the backbones on it.
 * Exits 1 when tfjs-node-gpu does not place work on a GPU or the CUDA provider fails.
 *
 * NOT RUN ON A GPU YET (written on CPU-only machines; see docs/training.md#gpu-workers-not-run-on-a-gpu-here).
 *
 * Each measurement runs in a child process: `tensorflow-gpu` with the GPU visible,
 * `tensorflow-gpu` with `CUDA_VISIBLE_DEVICES=` (the same library on the CPU), and
 * ONNX Runtime with the `cuda` and the `cpu` provider. Training: a teacher-head epoch
 * (4096 rows of 3840-d features, the three backbones', batch 256) and a fine-tuning epoch of the student's
 * backbone top (512 rows, batch 32), median after a warm-up epoch.
 *
 * Usage: `npx tsx bench/gpu-check.ts` (after `source $REELSET_TOOLS_DIR/gpu.env`).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { distillStudent, fineTuneStudent, loadSplitBackbone, trainTeacher } from '../activities/training';
import { backboneOptionsFromConfig, createFeatureExtractor, EFFICIENTNET_LITE0, EFFICIENTNET_LITE2 } from '../domain/backbone/model';
import { loadConfig } from '../lib/config';
import { mulberry32 } from '../lib/rng';
import { initTensorflow, type TfBackendPreference } from '../lib/tf';

type Row = Record<string, unknown>;

function random(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => r());
}

async function epochMs(run: (onEpoch: () => Promise<void>) => Promise<unknown>): Promise<number> {
  const marks = [performance.now()];
  await run(async () => void marks.push(performance.now()));
  const d = marks.slice(2).map((m, i) => m - marks[i + 1]!); // after the warm-up epoch
  return [...d].sort((a, b) => a - b)[Math.floor(d.length / 2)]!;
}

async function trainingChild(backend: TfBackendPreference): Promise<Row> {
  const rt = await initTensorflow(backend);
  const k = 8;
  const n = 4096;
  const labels = Int32Array.from({ length: n }, (_, i) => i % k);
  const teacher = await epochMs((onEpoch) =>
    trainTeacher({ features: random(n * 3840, 1), dim: 3840, labels, numClasses: k, epochs: 4, batchSize: 256, seed: 1, onEpoch }),
  );
  const bb = await loadSplitBackbone(rt.tf, 'efficientnet_lite0');
  const m = 512;
  const sl = Int32Array.from({ length: m }, (_, i) => i % k);
  const probs = new Float32Array(m * k).fill(1 / k);
  const head = await distillStudent({ features: random(m * 1280, 2), dim: 1280, labels: sl, numClasses: k, teacherProbs: probs, epochs: 1, seed: 1 });
  const fine = await epochMs((onEpoch) =>
    fineTuneStudent({
      labels: sl,
      numClasses: k,
      teacherProbs: probs,
      trunk: bb.trunk,
      trunkInputs: random(m * bb.trunk.inputShape.reduce((a, b) => a * b, 1), 3),
      head: head.model,
      epochs: 4,
      seed: 1,
      onEpoch,
    }),
  );
  bb.dispose();
  return { backend: rt.backend, native: rt.native ?? null, teacherEpochMs: teacher, fineTuneEpochMs: fine };
}

async function ortChild(provider: 'cpu' | 'cuda'): Promise<Row> {
  const config = loadConfig();
  const out: Row = { provider };
  for (const spec of [EFFICIENTNET_LITE0, EFFICIENTNET_LITE2]) {
    const m = await createFeatureExtractor(spec, { ...backboneOptionsFromConfig(config), runtime: 'onnxruntime', ortProvider: provider });
    const pixels = Array.from({ length: 32 }, (_, i) => Uint8Array.from(random(spec.inputSize * spec.inputSize * 3, i), (x) => Math.floor(x * 256)));
    await m.features(pixels, { batchSize: 32 });
    const t = performance.now();
    for (let r = 0; r < 3; r++) await m.features(pixels, { batchSize: 32 });
    out[spec.name] = { backend: m.backend, msPerImage: (performance.now() - t) / 96 };
  }
  return out;
}

function child(args: string[], env: Record<string, string>): Row {
  const r = spawnSync(process.execPath, [require.resolve('tsx/cli'), __filename, ...args], {
    env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return { ...(JSON.parse(last) as Row), gpuDevice: /device:GPU:\d/.test(r.stderr), exit: r.status };
  } catch {
    const why = r.stderr.split('\n').find((l) => /Error\b|error:/.test(l)) ?? r.stderr.trim().split('\n').at(-1) ?? '';
    return { error: `exit ${r.status}: ${why.trim().slice(0, 300)}` };
  }
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--child');
  if (i >= 0) {
    const what = process.argv[i + 1]!;
    const row = what.startsWith('ort-') ? await ortChild(what.slice(4) as 'cpu' | 'cuda') : await trainingChild(what as TfBackendPreference);
    process.stdout.write(`${JSON.stringify(row)}\n`);
    return;
  }
  try {
    console.log(execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).trim());
  } catch {
    console.log('nvidia-smi: not found');
  }
  // TF_CPP_MIN_LOG_LEVEL=0: TensorFlow logs the devices it creates ("Created device ... GPU:0").
  const gpu = child(['--child', 'tensorflow-gpu'], { TF_CPP_MIN_LOG_LEVEL: '0' });
  const cpu = child(['--child', 'tensorflow-gpu'], { TF_CPP_MIN_LOG_LEVEL: '0', CUDA_VISIBLE_DEVICES: '' });
  const ortCuda = child(['--child', 'ort-cuda'], {});
  const ortCpu = child(['--child', 'ort-cpu'], {});
  console.log(JSON.stringify({ gpu, cpu, ortCuda, ortCpu }, null, 2));
  const f = (x: unknown) => (typeof x === 'number' ? `${x.toFixed(1)} ms` : String(x));
  console.log('\n| what | GPU | CPU | CPU / GPU |\n| --- | --- | --- | --- |');
  console.log(
    `| tfjs-node-gpu backend / TensorFlow | ${gpu['error'] ?? `${gpu['backend']} ${JSON.stringify(gpu['native'])} (GPU device: ${gpu['gpuDevice']})`} | ${cpu['error'] ?? cpu['backend']} | |`,
  );
  for (const [name, key] of [
    ['teacher head epoch (4096 x 3840-d, batch 256)', 'teacherEpochMs'],
    ['student backbone top + head epoch (512 rows, batch 32)', 'fineTuneEpochMs'],
  ]) {
    console.log(`| ${name} | ${f(gpu[key!])} | ${f(cpu[key!])} | ${(Number(cpu[key!]) / Number(gpu[key!])).toFixed(1)}x |`);
  }
  for (const b of ['efficientnet_lite0', 'efficientnet_lite2']) {
    const g = ortCuda[b] as { backend: string; msPerImage: number } | undefined;
    const c = ortCpu[b] as { backend: string; msPerImage: number } | undefined;
    console.log(
      `| ONNX Runtime ${b}, batch 32, per image | ${g ? `${f(g.msPerImage)} (${g.backend})` : String(ortCuda['error'])} | ${c ? f(c.msPerImage) : String(ortCpu['error'])} | ${g && c ? `${(c.msPerImage / g.msPerImage).toFixed(1)}x` : '–'} |`,
    );
  }
  const ok =
    gpu['backend'] === 'tensorflow' &&
    gpu['gpuDevice'] === true &&
    (ortCuda['efficientnet_lite0'] as { backend?: string } | undefined)?.backend === 'onnxruntime/cuda';
  console.log(ok ? '\nGPU check passed' : '\nGPU check FAILED: see the rows above');
  process.exit(ok ? 0 : 1);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
