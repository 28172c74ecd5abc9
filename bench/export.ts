/**
 * The exported student against the registry's: `npx tsx bench/export.ts <label@version>`
 * (or `npm run bench:export -- <label@version>`).
 *
 * Exports the version to ONNX (float32, and float16 weights), then in this one process,
 * side by side on the label's fixed evaluation set: file size; the answers (largest
 * probability difference and argmax agreement with the tfjs model); accuracy on the set
 * (frames, and video balanced accuracy); and latency per image, batch 1 and batch 16,
 * each runtime on the same decoded frames, repeated, the median reported with its ratio
 * to tfjs. The last line is JSON (what test/integration/model-lifecycle.test.ts reads).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportStudent, getEvalSet, resolveModel } from '../activities/models';
import { balancedAccuracy, parseModelRef } from '../contracts';
import { loadClassifier, readClassifierS3, type ImageClassifier } from '../domain/classifier';
import { evaluate } from '../domain/metrics';
import { loadOnnxClassifier } from '../domain/onnx-classifier';
import { loadConfig } from '../lib/config';
import { createPool } from '../lib/db';
import { ObjectStore } from '../lib/s3';
import { initTensorflow } from '../lib/tf';

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.floor(a.length / 2)]!;
}

async function main(): Promise<void> {
  const ref = process.argv[2];
  if (!ref) throw new Error('usage: bench/export.ts <label@version> [repeats]');
  const repeats = Number(process.argv[3] ?? 3);
  const config = loadConfig();
  const pool = createPool(config);
  const store = ObjectStore.fromConfig(config);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-bench-export-'));
  try {
    const m = await resolveModel(pool, parseModelRef(ref));
    const set = await getEvalSet(pool, m.name);
    if (!set) throw new Error(`${m.name} has no evaluation set`);
    const files = await readClassifierS3(store, m.studentPrefix!);
    const tfRuntime = await initTensorflow(config.REELSET_TF_BACKEND);
    const t0 = Date.now();
    const exported = await exportStudent(files, dir, { toolsDir: config.REELSET_TOOLS_DIR, source: `${m.name}@${m.version}` });
    const exportMs = Date.now() - t0;
    const frames = set.frames.filter((f) => files.artifact.labels.includes(f.class));
    const images = await Promise.all(frames.map(async (f) => (await store.get(f.frameKey))!));
    const runtimes: Array<{ name: string; bytes: number; clf: ImageClassifier }> = [
      {
        name: `tfjs (${tfRuntime.backend})`,
        bytes: Buffer.byteLength(files.modelJson) + files.weights.length,
        clf: await loadClassifier(files, config.REELSET_TF_BACKEND),
      },
      {
        name: 'onnx float32',
        bytes: exported.files.float32.bytes,
        clf: await loadOnnxClassifier(path.join(dir, 'student.onnx'), files.artifact, config.REELSET_ORT_THREADS),
      },
      {
        name: 'onnx float16 weights',
        bytes: exported.files.float16Weights.bytes,
        clf: await loadOnnxClassifier(path.join(dir, 'student-fp16.onnx'), files.artifact, config.REELSET_ORT_THREADS),
      },
    ];
    const labels = files.artifact.labels;
    const k = labels.length;
    const rows = [];
    let base: Float32Array | null = null;
    let baseMs1 = 0;
    let baseMs16 = 0;
    for (const r of runtimes) {
      const p = await r.clf.predict(images); // warm-up and answers
      // Latency: the same images, batch 1 (first 16) and batch 16, `repeats` times; ms per image (decode + resize included).
      const one: number[] = [];
      const sixteen: number[] = [];
      for (let rep = 0; rep < repeats; rep++) {
        let t = performance.now();
        for (const img of images.slice(0, 16)) await r.clf.predict([img]);
        one.push((performance.now() - t) / Math.min(16, images.length));
        t = performance.now();
        await r.clf.predict(images.slice(0, 16));
        sixteen.push((performance.now() - t) / Math.min(16, images.length));
      }
      const ev = evaluate({
        probs: p.probs,
        numClasses: k,
        labels: Int32Array.from(frames.map((f) => labels.indexOf(f.class))),
        labelNames: labels,
        videoIds: frames.map((f) => f.videoId),
      });
      base ??= p.probs;
      let maxDiff = 0;
      let agree = 0;
      for (let i = 0; i < frames.length; i++) {
        let a = 0;
        let b = 0;
        for (let j = 0; j < k; j++) {
          maxDiff = Math.max(maxDiff, Math.abs(p.probs[i * k + j]! - base[i * k + j]!));
          if (p.probs[i * k + j]! > p.probs[i * k + a]!) a = j;
          if (base[i * k + j]! > base[i * k + b]!) b = j;
        }
        if (a === b) agree++;
      }
      const ms1 = median(one);
      const ms16 = median(sixteen);
      if (!baseMs1) {
        baseMs1 = ms1;
        baseMs16 = ms16;
      }
      rows.push({
        runtime: r.name,
        mb: r.bytes / 1e6,
        frameAccuracy: ev.frames.accuracy,
        videoBalancedAccuracy: balancedAccuracy(ev.videos),
        maxProbDiff: maxDiff,
        argmaxAgreement: agree / frames.length,
        msPerImageBatch1: ms1,
        msPerImageBatch16: ms16,
        ratioBatch1: ms1 / baseMs1,
        ratioBatch16: ms16 / baseMs16,
      });
      r.clf.dispose();
    }
    const f = (x: number | null, d = 1) => (x === null ? '-' : x.toFixed(d));
    console.log(
      `model ${m.name}@${m.version} on evaluation set v${set.version} (${frames.length} frames, ${set.videos.length} videos); export took ${(exportMs / 1000).toFixed(1)} s; ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(2)}`,
    );
    console.log(
      '| runtime | size MB | frame acc | video bal. acc | max abs dp vs tfjs | argmax agreement | ms/image batch 1 (ratio) | ms/image batch 16 (ratio) |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows) {
      console.log(
        `| ${r.runtime} | ${f(r.mb)} | ${f(100 * r.frameAccuracy!)}% | ${f(100 * r.videoBalancedAccuracy!)}% | ${r.maxProbDiff.toExponential(1)} | ${f(100 * r.argmaxAgreement)}% | ${f(r.msPerImageBatch1)} (${f(r.ratioBatch1, 2)}) | ${f(r.msPerImageBatch16)} (${f(r.ratioBatch16, 2)}) |`,
      );
    }
    console.log(JSON.stringify({ model: `${m.name}@${m.version}`, evalVersion: set.version, frames: frames.length, rows, exported }));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
    await pool.end();
    store.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
