/**
 * Export of a published student to ONNX (`infra/student_to_onnx.py` in the converter
 * venv that `infra/install.sh` makes for the backbones): `student.onnx` (float32) and
 * `student-fp16.onnx` (float16 weights), with `artifact.json` (the preprocessing) and
 * `export.json` (sizes, sha256s, converter versions) beside them.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, type ModelArtifact } from '../../contracts';
import type { ClassifierFiles } from '../../domain/classifier';
import { REELSET_ROOT } from '../../lib/config';
import { sha256File } from '../../lib/hash';

const run = promisify(execFile);

/** ONNX opset of the export (the backbones' too). */
export const EXPORT_OPSET = 17;

/** `export.json`. */
export interface ExportManifest {
  format: 'reelset-onnx-export/1';
  source: string;
  labels: string[];
  input: { name: 'pixels'; dtype: 'uint8'; shape: ['N', number, number, 3]; preprocess: ModelArtifact['input'] };
  outputs: { probabilities: ['N', number]; features: ['N', 1280]; imagenet_logits?: ['N', 1000] };
  files: Record<'float32' | 'float16Weights', { file: string; bytes: number; sha256: string }>;
  converter: Record<string, unknown>;
}

/**
 * Export a student's files to `outDir`.
 *
 * @param python the converter venv's python (default `$REELSET_TOOLS_DIR/convert-venv/bin/python`).
 * @throws ConfigError when the converter venv is missing (run `bash infra/install.sh`).
 */
export async function exportStudent(
  files: ClassifierFiles,
  outDir: string,
  opts: { toolsDir: string; source: string; python?: string },
): Promise<ExportManifest> {
  const python = opts.python ?? path.join(opts.toolsDir, 'convert-venv', 'bin', 'python');
  if (!(await fs.stat(python).catch(() => undefined))) throw new ConfigError(`ONNX export needs the converter venv (${python}); run \`bash infra/install.sh\``);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-export-'));
  try {
    await fs.writeFile(path.join(work, 'model.json'), files.modelJson);
    await fs.writeFile(path.join(work, 'weights.bin'), files.weights);
    await fs.mkdir(outDir, { recursive: true });
    if (files.artifact.input.kind !== 'image') throw new ConfigError('only image models (students) are exported');
    const rangeMax = String(files.artifact.input.range?.[1] ?? 1);
    const { stdout } = await run(
      python,
      [
        path.join(REELSET_ROOT, 'infra', 'student_to_onnx.py'),
        path.join(work, 'model.json'),
        path.join(work, 'weights.bin'),
        String(EXPORT_OPSET),
        outDir,
        rangeMax,
      ],
      {
        env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', CUDA_VISIBLE_DEVICES: '' },
        maxBuffer: 16 << 20,
      },
    );
    const converter = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    const info = async (file: string) => ({ file, bytes: (await fs.stat(path.join(outDir, file))).size, sha256: await sha256File(path.join(outDir, file)) });
    const a = files.artifact;
    if (a.input.kind !== 'image') throw new ConfigError('only image models (students) are exported');
    const manifest: ExportManifest = {
      format: 'reelset-onnx-export/1',
      source: opts.source,
      labels: a.labels,
      input: { name: 'pixels', dtype: 'uint8', shape: ['N', a.input.size, a.input.size, 3], preprocess: a.input },
      outputs: {
        probabilities: ['N', a.labels.length],
        features: ['N', 1280],
        ...((converter['outputs'] as string[] | undefined)?.includes('imagenet_logits') ? { imagenet_logits: ['N', 1000] as ['N', 1000] } : {}),
      },
      files: { float32: await info('student.onnx'), float16Weights: await info('student-fp16.onnx') },
      converter,
    };
    await fs.writeFile(path.join(outDir, 'artifact.json'), JSON.stringify(a, null, 1));
    await fs.writeFile(path.join(outDir, 'export.json'), JSON.stringify(manifest, null, 1));
    return manifest;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
