/**
 * The model lifecycle against real PostgreSQL and S3, on real videos of the registry
 * corpus: the fixed evaluation set (eligibility, versioning, who and why), evaluation of
 * published students (MobileNetV2 + a head, the real format) on it, the promotion gate
 * (first model, a worse candidate and a tie held back with the rule that held them back),
 * concurrent promotions (one wins), rollback, and the `reelset models` / `evalset` CLI.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fsSync from 'node:fs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { modelFromDir, predictPaths, type PathPrediction, type PredictModel } from '../../cli/commands/predict';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createTrainingActivities, createVideoActivities } from '../../activities';
import { main } from '../../cli/reelset';
import { labelRunIds } from '../../domain/labelled';
import { batchPredictWorkflow } from '../../workflows/batch-predict';
import { WORKFLOWS_PATH } from '../helpers/temporal';
import { calibrateScope } from '../../activities/models/scope';
import { gateConfig, loadConfig } from '../../lib/config';
import { applyScope, lumaStd } from '../../domain/scope';
import { evalSetCandidates, getEvalSet, growEvalSet } from '../../activities/models/evalset';
import { evaluateOnEvalSet } from '../../activities/models/evaluate';
import { listModels, productionVersion, promote, rollback, transitionsOf } from '../../activities/models/registry';
import { balancedAccuracy, type GateConfig } from '../../contracts';
import { createLogger } from '../../lib/logger';
import { initTensorflow } from '../../lib/tf';
import { buildStudent, CORPUS, FIXTURE_PARAMS, ingestWithFrames, prototypeKernel, publishStudent, registerDataset } from '../helpers/lifecycle';
import { requireServices, type Services } from '../helpers/services';

jest.setTimeout(600_000);
const run = promisify(execFile);

const LABEL = 'screen-recording';
const TRAIN = {
  pos: ['gnome-mahjongg-video', 'five-glines-demo', 'gnomedev-message-board'],
  neg: ['blupi-play101', 'lebiniou-lebiniou-2021-06-10_12-19-19', 'visp-cube'],
};
const EVAL = {
  pos: ['gnome-hints-video', 'python-basic', 'gnomedev-progressbar'],
  neg: ['blupi-play103', 'lebiniou-lebiniou-2021-06-10_12-23-40', 'pyfeat-WolfgangLanger_Pexels'],
};
// The `above-chance` minimum at 0 here: on 6 held-out videos the prototype model's interval
// reaches down to chance (5 of 6 right: 95% CI 50-100%), so the default 0.6 holds it back
// (asserted below); the lifecycle tests need a model that passes.
const GATE: GateConfig = { margin: 0.02, recallTolerance: 0.05, minLowerBound: 0 };
const DEFAULT_GATE: GateConfig = gateConfig(loadConfig({}));
const WF = 'test-lifecycle-run';

let svc: Services;
let deps: Parameters<typeof evaluateOnEvalSet>[0];
let fixtureFrames: Map<string, string[]>;

async function cleanLabel(): Promise<void> {
  const q = (sql: string) => svc.pool.query(sql, [LABEL]);
  await q('DELETE FROM model_evaluations WHERE name = $1');
  await q('DELETE FROM model_transitions WHERE name = $1');
  await q('DELETE FROM models WHERE name = $1');
  await q('DELETE FROM eval_set_frames WHERE label = $1');
  await q('DELETE FROM eval_set_videos WHERE label = $1');
  await q('DELETE FROM eval_sets WHERE label = $1');
  await q('DELETE FROM datasets WHERE name = $1');
  await svc.pool.query('DELETE FROM labeling_annotations WHERE annotation_id BETWEEN 9130000 AND 9139999');
  await svc.pool.query('DELETE FROM labeling_projects WHERE project_id BETWEEN 9130000 AND 9139999');
  // Frames an earlier run's batch predict extracted: the evaluation set takes a video's latest extraction.
  await svc.pool.query('DELETE FROM frames WHERE video_id = ANY($1) AND params_hash <> $2', [[...EVAL.pos, ...EVAL.neg], FIXTURE_PARAMS]);
}

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  const chunks: string[] = [];
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((c: string | Uint8Array) => {
    chunks.push(String(c));
    return true;
  }) as typeof process.stdout.write;
  const before = process.exitCode;
  try {
    process.exitCode = undefined;
    const code = await main(['node', 'reelset', ...args]);
    return { code, out: chunks.join('') };
  } finally {
    process.stdout.write = orig;
    process.exitCode = before;
  }
}

beforeAll(async () => {
  svc = await requireServices();
  await initTensorflow('wasm');
  deps = { ...svc, logger: createLogger('silent', 'test') };
  await cleanLabel();
  const frames = await ingestWithFrames(svc, [...TRAIN.pos, ...TRAIN.neg, ...EVAL.pos, ...EVAL.neg]);
  fixtureFrames = frames;
  const dsVersion = await registerDataset(svc, LABEL, WF, [...TRAIN.pos, ...TRAIN.neg], frames, (v) => (TRAIN.pos.includes(v) ? LABEL : 'other'));
  const framesOf = { [LABEL]: TRAIN.pos.flatMap((v) => frames.get(v)!), other: TRAIN.neg.flatMap((v) => frames.get(v)!) };
  const labels = [LABEL, 'other'];
  const good = await prototypeKernel(svc, labels, framesOf, 20);
  // The "worse" model: the classes' prototypes swapped (it calls screen recordings other).
  const swapped = new Float32Array(good.length);
  for (let d = 0; d < good.length / 2; d++) {
    swapped[d * 2] = good[d * 2 + 1]!;
    swapped[d * 2 + 1] = good[d * 2]!;
  }
  await publishStudent(svc, LABEL, 1, dsVersion, WF, await buildStudent(labels, good, WF));
  await publishStudent(svc, LABEL, 2, dsVersion, WF, await buildStudent(labels, swapped, WF));
  // v3..v5: the same prototypes at another scale: the same argmax, so a tie with v1 at the video level.
  for (const v of [3, 4, 5])
    await publishStudent(
      svc,
      LABEL,
      v,
      dsVersion,
      WF,
      await buildStudent(
        labels,
        good.map((x) => x * (1 + v / 10)),
        WF,
      ),
    );
});

afterAll(async () => {
  await svc?.close();
});

describe('fixed evaluation set', () => {
  it('offers only videos no dataset version trains on, and refuses a training video naming the dataset version', async () => {
    const c = await evalSetCandidates(svc.pool, svc.store, LABEL);
    const ids = c.map((x) => x.videoId);
    for (const v of [...EVAL.pos, ...EVAL.neg]) expect(ids).toContain(v);
    for (const v of [...TRAIN.pos, ...TRAIN.neg]) expect(ids).not.toContain(v);
    expect(c.find((x) => x.videoId === 'python-basic')!.catalogClass).toBe(LABEL);
    expect(c.find((x) => x.videoId === 'blupi-play103')!.catalogClass).toBe('other');
    await expect(
      growEvalSet(svc.pool, svc.store, { label: LABEL, videoIds: ['python-basic', 'five-glines-demo'], actor: 'alice', reason: 'r', framesPerVideo: 4 }),
    ).rejects.toThrow(/five-glines-demo" is in the training split of dataset screen-recording v1/);
    await expect(
      growEvalSet(svc.pool, svc.store, { label: LABEL, videoIds: ['python-basic'], actor: 'alice', reason: ' ', framesPerVideo: 4 }),
    ).rejects.toThrow(/reason is required/);
    expect(await getEvalSet(svc.pool, LABEL)).toBeNull();
  });

  it('grows on purpose into versions: v2 keeps every frame of v1 and records who and why', async () => {
    // Two people in Label Studio agree that one frame of the negative video shows the label;
    // on another frame they disagree (no consensus: the catalog's class stands).
    // Only the label's own project counts: two people of another label's project who called
    // the split frame `other` ("not their label") make no consensus here.
    const [agreed, split] = fixtureFrames.get(EVAL.neg[0]!)!;
    const project = async (label: string, id: number) => {
      await svc.pool.query(
        `INSERT INTO labeling_projects (label, project_id, url, choices) VALUES ($1, $2, 'http://ls.invalid', $3) ON CONFLICT (label) DO NOTHING`,
        [label, id, [label, 'other']],
      );
      return (await svc.pool.query<{ project_id: string }>('SELECT project_id FROM labeling_projects WHERE label = $1', [label])).rows[0]!.project_id;
    };
    const own = await project(LABEL, 9_130_913);
    const elsewhere = await project(`${LABEL}-elsewhere`, 9_130_914);
    const ann = (id: number, frame: string, who: string, label: string, projectId = own) =>
      svc.pool.query(
        `INSERT INTO labeling_annotations (annotation_id, task_id, project_id, frame_key, annotator, annotator_id, label, ls_updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())`,
        [id, 9_130_000 + (frame === agreed ? 1 : 2) + (projectId === own ? 0 : 10), projectId, frame, who, id, label],
      );
    await ann(9_130_001, agreed!, 'ann@x', LABEL);
    await ann(9_130_002, agreed!, 'bob@x', LABEL);
    await ann(9_130_003, split!, 'ann@x', LABEL);
    await ann(9_130_004, split!, 'bob@x', 'other');
    await ann(9_130_005, split!, 'cy@x', 'other', elsewhere);
    await ann(9_130_006, split!, 'dee@x', 'other', elsewhere);
    const v1 = await growEvalSet(svc.pool, svc.store, {
      label: LABEL,
      videoIds: [EVAL.pos[0]!, EVAL.neg[0]!],
      actor: 'alice',
      reason: 'first held-out videos',
      framesPerVideo: 6,
    });
    expect(v1.version).toBe(1);
    expect(v1.frames).toHaveLength(12);
    expect(v1.counts).toEqual({ [LABEL]: 7, other: 5 });
    expect(v1.frames.find((f) => f.frameKey === agreed)).toMatchObject({ class: LABEL, labelSource: 'consensus' });
    expect(v1.frames.find((f) => f.frameKey === split)).toMatchObject({ class: 'other', labelSource: 'catalog' });
    expect(v1.frames.filter((f) => f.labelSource === 'catalog')).toHaveLength(11);
    const v2 = await growEvalSet(svc.pool, svc.store, {
      label: LABEL,
      videoIds: [...EVAL.pos.slice(1), ...EVAL.neg.slice(1)],
      actor: 'bob',
      reason: 'more videos',
      framesPerVideo: 6,
    });
    expect(v2.version).toBe(2);
    expect(v2.videos).toHaveLength(6);
    expect(v2.frames.map((f) => f.frameKey)).toEqual(expect.arrayContaining(v1.frames.map((f) => f.frameKey)));
    expect((await getEvalSet(svc.pool, LABEL, 1))!.frames).toHaveLength(12); // v1 is never rewritten
    expect(v2).toMatchObject({ actor: 'bob', reason: 'more videos' });
    await expect(
      growEvalSet(svc.pool, svc.store, { label: LABEL, videoIds: [EVAL.pos[0]!], actor: 'bob', reason: 'again', framesPerVideo: 6 }),
    ).rejects.toThrow(/in the evaluation set already/);
    // Held-out videos are no longer candidates.
    expect((await evalSetCandidates(svc.pool, svc.store, LABEL)).map((c) => c.videoId)).not.toContain(EVAL.pos[0]);
  });
});

describe('evaluation and the promotion gate', () => {
  it('evaluates every version on the same frames; the prototype model separates the held-out videos, the swapped one does not', async () => {
    const e1 = await evaluateOnEvalSet(deps, { name: LABEL, version: 1 });
    const e2 = await evaluateOnEvalSet(deps, { name: LABEL, version: 2 });
    expect(e1.evalVersion).toBe(2);
    expect(e1.metrics.frames.n).toBe(36);
    expect(e1.metrics.frames.perLabel[LABEL]!.support).toBe(19); // 18 frames of the label's videos + the one two people moved
    expect(e1.metrics.videos.n).toBe(6);
    // Prototypes of 6 training videos have small margins: the video score moved between 0.83 and 0.67
    // across machines with the same frames, so the test asks for better than chance, and the swapped model worse.
    expect(balancedAccuracy(e1.metrics.videos)!).toBeGreaterThan(0.5);
    expect(balancedAccuracy(e2.metrics.videos)!).toBeLessThan(balancedAccuracy(e1.metrics.videos)!);
    const preds = await svc.store.getJson<{ frames: { probs: number[] }[] }>(e1.predictionsKey);
    expect(preds!.frames).toHaveLength(36);
    // Recorded once: a second call returns the same row.
    expect((await evaluateOnEvalSet(deps, { name: LABEL, version: 1 })).createdAt).toBe(e1.createdAt);
  });

  it('holds back a first model no better than chance with the default gate, the interval in its reason', async () => {
    // v2 (the swapped prototypes) calls the label's videos other: its interval's lower end is
    // at or below chance. (v1 separates the 6 held-out videos on Lite0 features, so the
    // default gate would pass it.)
    const held = await promote(svc.pool, { name: LABEL, version: 2, actor: 'alice', reason: 'first model', expectedProduction: null, gate: DEFAULT_GATE });
    expect(held.promoted).toBe(false);
    expect(held.transitions).toEqual([]);
    expect(held.gate.rules.map((r) => [r.rule, r.passed])).toEqual([
      ['eval-set', true],
      ['above-chance', false],
    ]);
    expect(held.gate.reason).toMatch(
      /^held back: above-chance: video balanced accuracy \d+\.\d% \(95% CI \d+\.\d–\d+\.\d%, 2,000 bootstrap resamples over 6 videos\): lower bound \d+\.\d% below 60\.0% \(2 classes, chance 50\.0%\)$/,
    );
    expect(held.gate.candidate.interval).toMatchObject({ units: 6, classes: 2, minimum: 0.6, stratified: true, degenerate: 0 });
    expect(held.gate.candidate.interval!.lower!).toBeLessThan(0.6);
    console.log(`default gate on ${LABEL}@2: ${held.gate.reason}`);
    expect(await productionVersion(svc.pool, LABEL)).toBeNull();
  });

  it('promotes the first model, holds back a worse one and a tie, saying which rule held each back', async () => {
    for (const v of [3, 4, 5]) await evaluateOnEvalSet(deps, { name: LABEL, version: v });
    const first = await promote(svc.pool, { name: LABEL, version: 1, actor: 'alice', reason: 'first model', expectedProduction: null, gate: GATE });
    expect(first.promoted).toBe(true);
    expect(first.gate.rules.map((r) => r.rule)).toEqual(['eval-set', 'above-chance']);
    expect(await productionVersion(svc.pool, LABEL)).toBe(1);

    const worse = await promote(svc.pool, { name: LABEL, version: 2, actor: 'alice', reason: 'try', gate: GATE });
    expect(worse.promoted).toBe(false);
    expect(worse.gate.rules.filter((r) => !r.passed).map((r) => r.rule)).toEqual(['video-margin', 'label-recall']);
    expect(worse.gate.reason).toMatch(/^held back: video-margin: .*label-recall: frame recall lost beyond tolerance: (screen-recording|other) /);

    const tie = await promote(svc.pool, { name: LABEL, version: 3, actor: 'alice', reason: 'try', gate: GATE });
    expect(tie.promoted).toBe(false);
    expect(tie.gate.rules.filter((r) => !r.passed).map((r) => r.rule)).toEqual(['video-margin']);
    expect(await productionVersion(svc.pool, LABEL)).toBe(1);

    await expect(promote(svc.pool, { name: LABEL, version: 1, actor: 'a', reason: 'r', gate: GATE })).rejects.toMatchObject({ type: 'RegistryError' });
    await expect(promote(svc.pool, { name: LABEL, version: 99, actor: 'a', reason: 'r', gate: GATE })).rejects.toThrow(/no model screen-recording@99/);
  });

  it('under concurrent promotions exactly one wins; the others lose with PromotionConflictError', async () => {
    const open: GateConfig = { margin: 0, recallTolerance: 0.05, minLowerBound: 0 }; // ties pass, so every one of them could win alone
    const tries = [3, 4, 5, 4, 5].map((version) =>
      promote(svc.pool, { name: LABEL, version, actor: `racer-${version}`, reason: 'race', expectedProduction: 1, gate: open }),
    );
    const results = await Promise.allSettled(tries);
    const won = results.filter((r) => r.status === 'fulfilled' && r.value.promoted);
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(4);
    for (const l of lost) expect((l as PromiseRejectedResult).reason).toMatchObject({ type: 'PromotionConflictError' });
    const prod = (await svc.pool.query<{ version: number }>(`SELECT version FROM models WHERE name = $1 AND stage = 'production'`, [LABEL])).rows;
    expect(prod).toHaveLength(1);
    const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof promote>>>).value.production!;
    expect(prod[0]!.version).toBe(winner);
    const t = await transitionsOf(svc.pool, LABEL);
    expect(t.filter((x) => x.to === 'production').map((x) => x.version)).toEqual([1, winner]);
    expect(t.find((x) => x.version === 1 && x.to === 'archived')).toMatchObject({ from: 'production', actor: `racer-${winner}` });
  });

  it('rolls back to the version in production before, recording who and why', async () => {
    const before = (await productionVersion(svc.pool, LABEL))!;
    const r = await rollback(svc.pool, { name: LABEL, actor: 'carol', reason: 'complaints from users' });
    expect(r.production).toBe(1);
    const models = await listModels(svc.pool, LABEL);
    expect(models.find((m) => m.version === before)!.stage).toBe('archived');
    expect(models.find((m) => m.version === 1)!.stage).toBe('production');
    const last = (await transitionsOf(svc.pool, LABEL)).slice(-2);
    expect(last.map((t) => [t.version, t.from, t.to, t.actor])).toEqual([
      [before, 'production', 'archived', 'carol'],
      [1, 'archived', 'production', 'carol'],
    ]);
    expect(last[1]!.reason).toBe('rollback: complaints from users');
  });
});

describe('reelset models / evalset (CLI)', () => {
  it('lists, shows, refuses a held-back promotion with exit 1 and the rule, and rolls back with --to', async () => {
    const list = await cli('models', 'list', LABEL, '--json');
    expect(list.code).toBe(0);
    const models = (JSON.parse(list.out) as { models: { version: number; stage: string; evaluation: unknown }[] }).models;
    expect(models.map((m) => m.version)).toEqual([5, 4, 3, 2, 1]);
    expect(models.find((m) => m.version === 1)!.stage).toBe('production');

    const show = await cli('models', 'show', `${LABEL}@2`, '--json');
    expect(show.code).toBe(0);
    const shown = JSON.parse(show.out) as { stage: string; gate: { promote: boolean }; transitions: unknown[] };
    expect(shown.stage).toBe('candidate');
    expect(shown.gate.promote).toBe(false);

    // The CLI's gate is the configuration's (default: the above-chance minimum 0.6).
    const held = await cli('models', 'promote', `${LABEL}@2`, '--reason', 'manual try', '--by', 'dave', '--json');
    expect(held.code).toBe(1);
    const heldOut = JSON.parse(held.out) as { gate: { reason: string }; scope: unknown };
    expect(heldOut.gate.reason).toMatch(/^held back: above-chance: video balanced accuracy .*\(95% CI .*over 6 videos\).*; video-margin: /);
    expect(heldOut.scope).toBeNull(); // a held-back candidate is not calibrated by promote

    const noReason = await cli('models', 'rollback', LABEL, '--json');
    expect(noReason.code).toBe(2);
    // v3 has no out-of-scope gate (published by the test, never promoted by a retrain): the rollback makes one.
    await svc.store.deleteMany([`models/${LABEL}/v3/student/scope.json`]);
    const rb = await cli('models', 'rollback', LABEL, '--to', '3', '--reason', 'pin v3', '--by', 'dave', '--json');
    expect(rb.code).toBe(0);
    expect(await productionVersion(svc.pool, LABEL)).toBe(3);
    expect(JSON.parse(rb.out)).toMatchObject({
      production: 3,
      scope: { ok: true, key: `models/${LABEL}/v3/student/scope.json`, calibration: 'leave-one-video-out' },
    });
    expect(await svc.store.head(`models/${LABEL}/v3/student/scope.json`)).toBeGreaterThan(1000);

    const es = await cli('evalset', 'show', LABEL, '--json');
    expect((JSON.parse(es.out) as { history: { version: number; actor: string }[] }).history.map((h) => [h.version, h.actor])).toEqual([
      [1, 'alice'],
      [2, 'bob'],
    ]);
    const bad = await cli('models', 'show', `${LABEL}@x`, '--json');
    expect(bad.code).toBe(2);
  });
});

describe('reelset models promote calibrates the out-of-scope gate', () => {
  it('promotes a candidate by CLI (gate from the environment) and leaves its scope.json in S3', async () => {
    const candidate = (await listModels(svc.pool, LABEL)).find((m) => m.stage === 'candidate' && m.version >= 3)!;
    expect(candidate).toBeDefined();
    const key = `models/${LABEL}/v${candidate.version}/student/scope.json`;
    await svc.store.deleteMany([key]);
    expect(await svc.store.head(key)).toBeUndefined();
    // A tie with production v3 (the same prototypes at another scale) passes with margin 0; the
    // above-chance minimum at 0 as for GATE above. Set for this CLI call only.
    const saved = { m: process.env['REELSET_PROMOTION_MARGIN'], b: process.env['REELSET_PROMOTION_MIN_LOWER_BOUND'] };
    process.env['REELSET_PROMOTION_MARGIN'] = '0';
    process.env['REELSET_PROMOTION_MIN_LOWER_BOUND'] = '0';
    let res: { code: number; out: string };
    try {
      res = await cli('models', 'promote', `${LABEL}@${candidate.version}`, '--reason', 'same model, new scale', '--by', 'erin', '--json');
    } finally {
      for (const [k, v] of [
        ['REELSET_PROMOTION_MARGIN', saved.m],
        ['REELSET_PROMOTION_MIN_LOWER_BOUND', saved.b],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    expect(res.code).toBe(0);
    const out = JSON.parse(res.out) as {
      promoted: boolean;
      production: number;
      gate: { rules: { rule: string }[] };
      scope: { ok: boolean; key: string; threshold: number };
    };
    expect(out).toMatchObject({ promoted: true, production: candidate.version, scope: { ok: true, key } });
    expect(out.gate.rules.map((r) => r.rule)).toEqual(['eval-set', 'above-chance', 'video-margin', 'label-recall']);
    expect(await productionVersion(svc.pool, LABEL)).toBe(candidate.version);
    expect(await svc.store.head(key)).toBeGreaterThan(1000);
    const scope = (await svc.store.getJson<{ format: string; threshold: number; references: { frameKeys: string[] } }>(key))!;
    expect(scope.format).toBe('reelset-scope/1');
    expect(scope.threshold).toBe(out.scope.threshold);
    expect(scope.references.frameKeys).toHaveLength(36);
    // The version promoted is the one predict now finds in production, with its scope.
    const pulled = await cli('models', 'pull', `${LABEL}@production`, '--out', path.join(os.tmpdir(), `reelset-promoted-${process.pid}`), '--json');
    expect((JSON.parse(pulled.out) as { files: string[] }).files).toContain('scope.json');
    await fs.rm(path.join(os.tmpdir(), `reelset-promoted-${process.pid}`), { recursive: true, force: true });
  });
});

describe('predict and the out-of-scope gate', () => {
  let dir: string;
  let model: PredictModel;
  const config = loadConfig();
  const corpusVideo = (id: string) =>
    path.join(
      CORPUS,
      'videos',
      fsSync.readdirSync(path.join(CORPUS, 'videos')).find((f) => f.startsWith(`${id}.`))!,
    );

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-predict-'));
    const cal = await calibrateScope(deps, { name: LABEL, version: 1, force: true });
    expect(cal).toMatchObject({ calibration: 'leave-one-video-out', quantile: 0.05, references: 36, dim: 1280 });
    // The registry's copy, as a user gets it (models pull), then predict with no service.
    const pulled = await cli('models', 'pull', `${LABEL}@1`, '--out', path.join(dir, 'model'), '--json');
    expect(pulled.code).toBe(0);
    expect((JSON.parse(pulled.out) as { files: string[] }).files).toEqual(expect.arrayContaining(['model.json', 'weights.bin', 'artifact.json', 'scope.json']));
    model = await modelFromDir(path.join(dir, 'model'));
  });
  afterAll(async () => {
    model?.classifier.dispose();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('classifies a held-out video of the label and one of another label, per frame and aggregated by the mean probability', async () => {
    const [pos, neg] = await predictPaths(model, [corpusVideo('python-basic'), corpusVideo('blupi-play103')], { fps: 1, maxFrames: 8, config });
    expect(pos!.error).toBeUndefined();
    expect(pos!.kind).toBe('video');
    expect(pos!.frames.length).toBeGreaterThanOrEqual(4);
    expect(pos!.result).toMatchObject({ aggregation: 'mean-probability', frames: pos!.frames.length });
    expect(pos!.result!.probabilities[LABEL]! + pos!.result!.probabilities['other']!).toBeCloseTo(1, 4);
    // The video of the label gets more of the label's probability than the other label's video (the
    // prototype model's argmax on one video is too close to call across machines; see above).
    expect(pos!.result!.probabilities[LABEL]!).toBeGreaterThan(neg!.result!.probabilities[LABEL]!);
    expect(neg!.result!.label).toBe('other');
    for (const f of pos!.frames) expect(Object.values(f.probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    // The CLI on the same model directory, and a file that is not a video: reported, the others go on.
    await fs.writeFile(path.join(dir, 'notes.txt'), 'not a video');
    const r = await cli('predict', path.join(dir, 'notes.txt'), '--model-dir', path.join(dir, 'model'), '--json');
    expect(r.code).toBe(1);
    expect((JSON.parse(r.out) as { inputs: PathPrediction[] }).inputs[0]!.error!.type).toBe('VideoDecodeError');
    // From the registry (the same model, 4 frames): a video result over the model's labels.
    const reg = await cli('predict', corpusVideo('python-basic'), '--model', `${LABEL}@1`, '--max-frames', '4', '--json');
    expect(reg.code).toBe(0);
    expect([LABEL, 'other', 'unknown']).toContain((JSON.parse(reg.out) as { inputs: PathPrediction[] }).inputs[0]!.result!.label);
  });

  it('answers unknown for lavfi test patterns, and measures its cost on the evaluation set', async () => {
    const patterns = [
      'testsrc',
      'testsrc2',
      'smptebars',
      'smptehdbars',
      'pal100bars',
      'rgbtestsrc',
      'yuvtestsrc',
      'mandelbrot',
      'color=c=black',
      'color=c=white',
      'color=c=gray',
      'cellauto',
      'life',
      'sierpinski',
      'gradients',
    ];
    const pdir = path.join(dir, 'patterns');
    await fs.mkdir(pdir);
    for (const p of patterns) {
      await run('ffmpeg', [
        '-v',
        'error',
        '-f',
        'lavfi',
        '-i',
        `${p}${p.includes('=') ? ':' : '='}size=320x240`,
        '-frames:v',
        '1',
        path.join(pdir, `${p.replace(/[^a-z0-9]/g, '_')}.png`),
      ]);
    }
    const res = await predictPaths(model, await fs.readdir(pdir).then((n) => n.map((x) => path.join(pdir, x))), { fps: 1, maxFrames: 1, config });
    expect(res.every((r) => !r.error)).toBe(true);
    const rejected = res.filter((r) => r.frames[0]!.label === 'unknown').length / res.length;
    // In scope: the frames of the held-out (evaluation-set) videos of both classes.
    const heldOut = [...EVAL.pos, ...EVAL.neg].flatMap((v) => fixtureFrames.get(v)!);
    const images = await Promise.all(heldOut.map(async (k) => (await svc.store.get(k))!));
    const p = await model.classifier.predict(images);
    const gated = applyScope(model.scope!, p.features, p.featureDim, await Promise.all(images.map((b) => lumaStd(b))), p.imagenetLogits);
    const kept = gated.inScope;
    console.log(
      `held-out in-scope scores: ${Array.from(gated.scores!)
        .sort()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    const cost = kept.filter((k) => !k).length / kept.length;
    console.log(
      `out-of-scope gate: rejected ${res.filter((r) => r.frames[0]!.label === 'unknown').length}/${res.length} lavfi patterns (${(100 * rejected).toFixed(0)}%); in-scope evaluation-set frames rejected ${kept.filter((k) => !k).length}/${kept.length} (${(100 * cost).toFixed(1)}%)`,
    );
    console.log(
      `thresholds: nearest-neighbour ${model.scope!.threshold.toFixed(3)}, ImageNet log-sum-exp ${model.scope!.imagenet?.threshold.toFixed(2)}\n${res.map((r) => `${path.basename(r.path)} ${r.frames[0]!.label} ${r.frames[0]!.outOfScope ?? ''} ${r.frames[0]!.scopeScore!.toFixed(3)} ${r.frames[0]!.imagenetScore?.toFixed(2)}`).join('\n')}`,
    );
    // Flat frames (black, white, grey) are always rejected; structured patterns only when
    // they are far from every training frame (measured and printed; docs/benchmarks.md#out-of-scope-gate).
    for (const c of ['color_c_black.png', 'color_c_white.png', 'color_c_gray.png']) {
      expect(res.find((r) => path.basename(r.path) === c)!.frames[0]).toMatchObject({ label: 'unknown', outOfScope: 'degenerate' });
    }
    expect(rejected).toBeGreaterThanOrEqual(3 / 15);
    expect(cost).toBeLessThanOrEqual(0.25);
  });
});

describe('ONNX export', () => {
  it("exports the student as one ONNX file (and a float16-weights one) that give the registry model's answers", () => {
    // In a child process: ONNX Runtime's tensors fail instanceof checks inside jest's vm realm.
    let stdout: string;
    try {
      stdout = execFileSync(process.execPath, [require.resolve('tsx/cli'), path.join(__dirname, '../../bench/export.ts'), `${LABEL}@1`, '1'], {
        encoding: 'utf8',
        env: { ...process.env, NODE_NO_WARNINGS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      throw new Error(`bench/export.ts failed:\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    }
    console.log(stdout);
    const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      frames: number;
      rows: Array<{ runtime: string; mb: number; maxProbDiff: number; argmaxAgreement: number; frameAccuracy: number }>;
    };
    expect(r.frames).toBe(36);
    const [tfjs, f32, f16] = r.rows;
    expect(f32!.maxProbDiff).toBeLessThan(1e-3);
    expect(f32!.argmaxAgreement).toBe(1);
    expect(f32!.frameAccuracy).toBe(tfjs!.frameAccuracy);
    expect(f16!.mb).toBeLessThan(0.55 * f32!.mb);
    // The fixture's prototype head has small margins (two similar class means): float16
    // convolution kernels move a few frames across it (a trained student moved none; docs/benchmarks.md#onnx-export).
    expect(f16!.maxProbDiff).toBeLessThan(0.1);
    expect(f16!.argmaxAgreement).toBeGreaterThanOrEqual(0.85);
  });
});

describe('batch predict workflow', () => {
  // On training videos of the fixture: the evaluation set takes a video's latest extraction, and these are never in it.
  it('classifies a catalog selection on real workers and records model labels, reporting a video that fails', async () => {
    const suffix = `${Date.now().toString(36)}`;
    const queues = { video: `bp-video-${suffix}`, gpu: `bp-gpu-${suffix}` };
    const connection = await NativeConnection.connect({ address: svc.config.TEMPORAL_ADDRESS });
    const client = new Client({ connection: await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS }), namespace: svc.config.TEMPORAL_NAMESPACE });
    const video = await Worker.create({
      connection,
      namespace: svc.config.TEMPORAL_NAMESPACE,
      taskQueue: queues.video,
      workflowsPath: WORKFLOWS_PATH,
      activities: createVideoActivities(deps),
    });
    const gpu = await Worker.create({
      connection,
      namespace: svc.config.TEMPORAL_NAMESPACE,
      taskQueue: queues.gpu,
      activities: createTrainingActivities(deps),
    });
    const id = `bp-${suffix}`;
    try {
      const result = await video.runUntil(
        gpu.runUntil(
          client.workflow.execute(batchPredictWorkflow, {
            taskQueue: queues.video,
            workflowId: id,
            args: [
              {
                model: `${LABEL}@1`,
                videoIds: [TRAIN.pos[0]!, TRAIN.neg[0]!, 'no-such-video'],
                extract: { fps: 1, maxFramesPerVideo: 6 },
                gpuTaskQueue: queues.gpu,
                heartbeatTimeoutS: 30,
              },
            ],
          }),
        ),
      );
      expect(result).toMatchObject({ model: { name: LABEL, version: 1 }, videos: 3, failed: 1 });
      expect(result.perLabel[LABEL]).toBe(1);
      expect(result.perLabel['other']).toBe(1);
      const file = (await svc.store.getJson<{ videos: Array<{ videoId: string; label: string | null; error?: { type: string } }> }>(result.predictionsKey))!;
      expect(file.videos.find((v) => v.videoId === 'no-such-video')!.error!.type).toBe('CatalogError');
      expect(file.videos.find((v) => v.videoId === TRAIN.pos[0])!.label).toBe(LABEL);
      const rows = await svc.pool.query<{ label: string; source: string; n: string }>(
        `SELECT label, source, count(*) AS n FROM frame_labels WHERE workflow_id = $1 GROUP BY 1, 2`,
        [id],
      );
      expect(rows.rows.every((r) => r.source === 'model')).toBe(true);
      expect(rows.rows.reduce((a, r) => a + Number(r.n), 0)).toBe(result.frameLabels);
      expect(result.frameLabels).toBeGreaterThan(0);
      // Model labels of a batch are pre-annotations, never training labels of the label's datasets.
      expect(await labelRunIds(svc.pool, LABEL)).not.toContain(id);
    } finally {
      await connection.close();
      await client.connection.close();
    }
  });
});
