/**
 * The model lifecycle against real PostgreSQL and S3, on real videos of the registry
 * corpus: the fixed evaluation set (eligibility, versioning, who and why), evaluation of
 * published students (MobileNetV2 + a head, the real format) on it, the promotion gate
 * (first model, a worse candidate and a tie held back with the rule that held them back),
 * concurrent promotions (one wins), rollback, and the `reelset models` / `evalset` CLI.
 */
import { main } from '../../cli/reelset';
import { evalSetCandidates, getEvalSet, growEvalSet } from '../../activities/models/evalset';
import { evaluateOnEvalSet } from '../../activities/models/evaluate';
import { listModels, productionVersion, promote, rollback, transitionsOf } from '../../activities/models/registry';
import { balancedAccuracy, type GateConfig } from '../../contracts';
import { createLogger } from '../../lib/logger';
import { initTensorflow } from '../../lib/tf';
import { buildStudent, ingestWithFrames, prototypeKernel, publishStudent, registerDataset } from '../helpers/lifecycle';
import { requireServices, type Services } from '../helpers/services';

jest.setTimeout(600_000);

const LABEL = 'screen-recording';
const TRAIN = { pos: ['gnome-mahjongg-video', 'five-glines-demo', 'gnomedev-message-board'], neg: ['blupi-play101', 'lebiniou-lebiniou-2021-06-10_12-19-19', 'visp-cube'] };
const EVAL = { pos: ['gnome-hints-video', 'python-basic', 'gnomedev-progressbar'], neg: ['blupi-play103', 'lebiniou-lebiniou-2021-06-10_12-23-40', 'pyfeat-WolfgangLanger_Pexels'] };
const GATE: GateConfig = { margin: 0.02, recallTolerance: 0.05, minScore: 0.5 };
const WF = 'test-lifecycle-run';

let svc: Services;
let deps: Parameters<typeof evaluateOnEvalSet>[0];

async function cleanLabel(): Promise<void> {
  const q = (sql: string) => svc.pool.query(sql, [LABEL]);
  await q('DELETE FROM model_evaluations WHERE name = $1');
  await q('DELETE FROM model_transitions WHERE name = $1');
  await q('DELETE FROM models WHERE name = $1');
  await q('DELETE FROM eval_set_frames WHERE label = $1');
  await q('DELETE FROM eval_set_videos WHERE label = $1');
  await q('DELETE FROM eval_sets WHERE label = $1');
  await q('DELETE FROM datasets WHERE name = $1');
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
  const dsVersion = await registerDataset(svc, LABEL, WF, [...TRAIN.pos, ...TRAIN.neg]);
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
  for (const v of [3, 4, 5]) await publishStudent(svc, LABEL, v, dsVersion, WF, await buildStudent(labels, good.map((x) => x * (1 + v / 10)), WF));
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
    await expect(growEvalSet(svc.pool, svc.store, { label: LABEL, videoIds: ['python-basic', 'five-glines-demo'], actor: 'alice', reason: 'r', framesPerVideo: 4 })).rejects.toThrow(
      /five-glines-demo" is in the training split of dataset screen-recording v1/,
    );
    await expect(growEvalSet(svc.pool, svc.store, { label: LABEL, videoIds: ['python-basic'], actor: 'alice', reason: ' ', framesPerVideo: 4 })).rejects.toThrow(/reason is required/);
    expect(await getEvalSet(svc.pool, LABEL)).toBeNull();
  });

  it('grows on purpose into versions: v2 keeps every frame of v1 and records who and why', async () => {
    const v1 = await growEvalSet(svc.pool, svc.store, { label: LABEL, videoIds: [EVAL.pos[0]!, EVAL.neg[0]!], actor: 'alice', reason: 'first held-out videos', framesPerVideo: 6 });
    expect(v1.version).toBe(1);
    expect(v1.frames).toHaveLength(12);
    expect(v1.counts).toEqual({ [LABEL]: 6, other: 6 });
    expect(v1.frames.every((f) => f.labelSource === 'catalog')).toBe(true);
    const v2 = await growEvalSet(svc.pool, svc.store, { label: LABEL, videoIds: [...EVAL.pos.slice(1), ...EVAL.neg.slice(1)], actor: 'bob', reason: 'more videos', framesPerVideo: 6 });
    expect(v2.version).toBe(2);
    expect(v2.videos).toHaveLength(6);
    expect(v2.frames.map((f) => f.frameKey)).toEqual(expect.arrayContaining(v1.frames.map((f) => f.frameKey)));
    expect((await getEvalSet(svc.pool, LABEL, 1))!.frames).toHaveLength(12); // v1 is never rewritten
    expect(v2).toMatchObject({ actor: 'bob', reason: 'more videos' });
    await expect(growEvalSet(svc.pool, svc.store, { label: LABEL, videoIds: [EVAL.pos[0]!], actor: 'bob', reason: 'again', framesPerVideo: 6 })).rejects.toThrow(/in the evaluation set already/);
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
    expect(e1.metrics.videos.n).toBe(6);
    expect(balancedAccuracy(e1.metrics.videos)!).toBeGreaterThanOrEqual(0.8);
    expect(balancedAccuracy(e2.metrics.videos)!).toBeLessThan(balancedAccuracy(e1.metrics.videos)!);
    const preds = await svc.store.getJson<{ frames: { probs: number[] }[] }>(e1.predictionsKey);
    expect(preds!.frames).toHaveLength(36);
    // Recorded once: a second call returns the same row.
    expect((await evaluateOnEvalSet(deps, { name: LABEL, version: 1 })).createdAt).toBe(e1.createdAt);
  });

  it('promotes the first model, holds back a worse one and a tie, saying which rule held each back', async () => {
    for (const v of [3, 4, 5]) await evaluateOnEvalSet(deps, { name: LABEL, version: v });
    const first = await promote(svc.pool, { name: LABEL, version: 1, actor: 'alice', reason: 'first model', expectedProduction: null, gate: GATE });
    expect(first.promoted).toBe(true);
    expect(first.gate.rules.map((r) => r.rule)).toEqual(['eval-set', 'first-model']);
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
    const open: GateConfig = { margin: 0, recallTolerance: 0.05, minScore: 0 }; // ties pass, so every one of them could win alone
    const tries = [3, 4, 5, 4, 5].map((version) => promote(svc.pool, { name: LABEL, version, actor: `racer-${version}`, reason: 'race', expectedProduction: 1, gate: open }));
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

    const held = await cli('models', 'promote', `${LABEL}@2`, '--reason', 'manual try', '--by', 'dave', '--json');
    expect(held.code).toBe(1);
    expect((JSON.parse(held.out) as { gate: { reason: string } }).gate.reason).toMatch(/held back: video-margin/);

    const noReason = await cli('models', 'rollback', LABEL, '--json');
    expect(noReason.code).toBe(2);
    const rb = await cli('models', 'rollback', LABEL, '--to', '3', '--reason', 'pin v3', '--by', 'dave', '--json');
    expect(rb.code).toBe(0);
    expect(await productionVersion(svc.pool, LABEL)).toBe(3);

    const es = await cli('evalset', 'show', LABEL, '--json');
    expect((JSON.parse(es.out) as { history: { version: number; actor: string }[] }).history.map((h) => [h.version, h.actor])).toEqual([
      [1, 'alice'],
      [2, 'bob'],
    ]);
    const bad = await cli('models', 'show', `${LABEL}@x`, '--json');
    expect(bad.code).toBe(2);
  });
});
