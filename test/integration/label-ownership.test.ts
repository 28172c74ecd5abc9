/**
 * A label's data is its own (issue 17), against the real PostgreSQL: the rows an earlier
 * label step copied across labels (another label's label, another label's `other`, a
 * model's label) are in `frame_labels` under a run of the label, as the bug left them;
 * `labelledFrames` (the label's cumulative dataset and the retrain's fingerprint) and
 * `ownLabels` (what a seen cluster inherits) read around them, and `exclusionEvidence`
 * finds only positives of labels the taxonomy says exclude the label.
 */
import { createHash } from 'node:crypto';
import { exclusionEvidence, labelledFrames, labelledFramesWithRepair, labelRunIds, ownLabels } from '../../domain/labelled';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';

jest.setTimeout(60_000);

let svc: Services;
const s = uniqueSuffix();
const P = `own-p-${s}`; // the label read ("person")
const PC = `${P}-child`; // a kind of P
const C = `own-c-${s}`; // a label that does not exclude P ("cartoon")
const G = `own-g-${s}`; // a label that excludes P ("game-cinematic")
const SYN = `own-syn-${s}`; // a synonym of P
const run = (name: string) => `own-${name}-${s}`;
const RUNS = { p1: run('p1'), p2: run('p2'), p3: run('p3'), psyn: run('psyn'), c1: run('c1'), g1: run('g1'), batch: run('batch') };
const video = (name: string) => `own-${name}-${s}`;
const V = { p: video('vp'), t: video('vt'), c: video('vc'), g: video('vg') };
const frame = (v: string, i: number) => `frames/${createHash('sha256').update(v).digest('hex')}/own/${i}.jpg`;
const F = { p1: frame(V.p, 1), p2: frame(V.p, 2), t1: frame(V.t, 1), c1: frame(V.c, 1), g1: frame(V.g, 1) };

async function label(
  frameKey: string,
  workflowId: string,
  l: string,
  source: 'weak' | 'model',
  extra: { origin?: string; from?: string; key?: string; as?: string } = {},
) {
  await svc.pool.query(
    `INSERT INTO frame_labels (frame_key, workflow_id, label, source, confidence, origin, inherited_from, inherited_key, inherited_label, created_at)
     VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, clock_timestamp())`,
    [frameKey, workflowId, l, source, extra.origin ?? null, extra.from ?? null, extra.key ?? null, extra.as ?? null],
  );
}

beforeAll(async () => {
  svc = await requireServices();
  const q = (sql: string, p: unknown[]) => svc.pool.query(sql, p);
  await q(`INSERT INTO labels (name, synonyms) VALUES ($1, $2), ($3, '{}'), ($4, '{}')`, [P, [SYN], C, G]);
  await q(`INSERT INTO labels (name, parent) VALUES ($1, $2)`, [PC, P]);
  await q(`UPDATE labels SET excludes = $2 WHERE name = $1`, [G, [P]]);
  for (const v of Object.values(V)) {
    await q(`INSERT INTO videos (id, sha256, s3_key, file_name, bytes) VALUES ($1, $2, $3, $4, 1)`, [
      v,
      createHash('sha256').update(v).digest('hex'),
      `videos/${v}`,
      `${v}.mp4`,
    ]);
  }
  await q(`INSERT INTO video_labels (video_id, label) VALUES ($1, $2), ($3, $4), ($5, $6)`, [V.p, P, V.c, C, V.g, G]);
  for (const [k, v] of [
    [F.p1, V.p],
    [F.p2, V.p],
    [F.t1, V.t],
    [F.c1, V.c],
    [F.g1, V.g],
  ] as const) {
    await q(
      `INSERT INTO frames (s3_key, video_id, params_hash, frame_index, timestamp_s, width, height, bytes, sha256, sharpness, brightness)
       VALUES ($1, $2, 'own', $3, 1, 4, 4, 1, 'x', 1, 128)`,
      [k, v, Number(k.slice(-5, -4))],
    );
  }
  const runRow = (id: string, kind: string, l: string) =>
    q(`INSERT INTO runs (workflow_id, kind, label, input, status) VALUES ($1, $2, $3, '{}', 'completed')`, [id, kind, l]);
  await runRow(RUNS.p1, 'new-category', P);
  await runRow(RUNS.c1, 'new-category', C);
  await runRow(RUNS.g1, 'new-category', G);
  await runRow(RUNS.p2, 'new-category', P);
  await runRow(RUNS.psyn, 'new-category', SYN);
  await runRow(RUNS.p3, 'retrain', P);
  await runRow(RUNS.batch, 'batch-predict', P);
  // The title-matched video: a run of P searched it as a positive (the retrain ledger says so).
  await q(`INSERT INTO label_videos (label, video_id, workflow_id, role, outcome) VALUES ($1, $2, $3, 'positive', 'extracted')`, [P, V.t, RUNS.p1]);

  // P's first run: its own weak labels. Then C's and G's runs over the same frames (shared, content-addressed).
  for (const [k, l] of [
    [F.p1, P],
    [F.p2, P],
    [F.t1, P],
    [F.c1, 'other'],
    [F.g1, 'other'],
  ])
    await label(k!, RUNS.p1, l!, 'weak', { origin: 'own' });
  for (const [k, l] of [
    [F.c1, C],
    [F.p1, 'other'],
    [F.p2, 'other'],
    [F.g1, 'other'],
  ])
    await label(k!, RUNS.c1, l!, 'weak', { origin: 'own' });
  for (const [k, l] of [
    [F.g1, G],
    [F.p1, 'other'],
    [F.c1, 'other'],
  ])
    await label(k!, RUNS.g1, l!, 'weak', { origin: 'own' });
  // P's second run, as the buggy label step wrote it (no provenance): the newest label of any run, copied.
  await label(F.p1, RUNS.p2, 'other', 'weak'); // G's "not G"
  await label(F.p2, RUNS.p2, 'other', 'weak'); // C's "not C"
  await label(F.t1, RUNS.p2, 'other', 'weak'); // another label's "not me", on the title-matched positive
  await label(F.g1, RUNS.p2, G, 'weak'); // G's positive
  await label(F.c1, RUNS.p2, 'other', 'weak'); // C's "not C" on a negative of P: indistinguishable from P's own, and right for P
  await label(F.p1, RUNS.p2, P, 'model'); // a batch prediction, copied with its source
  // A batch predict of P's model: never a training label.
  await label(F.p2, RUNS.batch, 'other', 'model');
  // A run started with P's synonym (recorded with the synonym) is P's run.
  await label(F.p2, RUNS.psyn, PC, 'weak', { origin: 'own' });
  // A later run of P with provenance: a valid evidence row and an inheritance, and rows that are not valid.
  await label(F.g1, RUNS.p3, 'other', 'weak', { origin: 'evidence', from: RUNS.g1, key: F.g1, as: G });
  await label(F.c1, RUNS.p3, 'other', 'weak', { origin: 'evidence', from: RUNS.c1, key: F.c1, as: C }); // C does not exclude P
  await label(F.t1, RUNS.p3, P, 'weak', { origin: 'inherited', from: RUNS.p1, key: F.t1, as: P });
  await label(F.p1, RUNS.p3, 'other', 'weak', { origin: 'inherited', from: RUNS.g1, key: F.p1, as: 'other' }); // from another label's run
});

afterAll(async () => {
  if (svc) {
    await svc.pool.query('DELETE FROM runs WHERE workflow_id = ANY($1::text[])', [Object.values(RUNS)]);
    await svc.pool.query('DELETE FROM videos WHERE id = ANY($1::text[])', [Object.values(V)]);
    await svc.pool.query('DELETE FROM labels WHERE name = ANY($1::text[])', [[PC, P, C, G]]);
  }
  await svc?.close();
});

test("the label's runs: its own and its synonym's, never a batch predict", async () => {
  expect(await labelRunIds(svc.pool, P)).toEqual([RUNS.p1, RUNS.p2, RUNS.p3, RUNS.psyn].sort());
});

test("the label's labelled frames hold only its own labels: what the bug copied is left out and counted", async () => {
  const { frames, dropped } = await labelledFramesWithRepair(svc.pool, P);
  expect(new Map(frames.map((f) => [f.frameKey, [f.label, f.workflowId]]))).toEqual(
    new Map([
      [F.p1, [P, RUNS.p1]], // G's `other` and the copied model label are not P's
      [F.p2, [PC, RUNS.psyn]], // the latest of P's own: the synonym run's
      [F.t1, [P, RUNS.p3]], // inherited from P's own first run
      [F.c1, ['other', RUNS.p2]], // a copied `other` on a negative of P: cannot be told from P's own; right for P
      [F.g1, ['other', RUNS.p3]], // evidence: G's positive, G excludes P
    ]),
  );
  expect(frames.every((f) => f.source === 'weak')).toBe(true);
  expect(dropped).toEqual({
    'other-on-a-video-of-the-label': 3, // p1, p2 (catalog), t1 (ledger)
    'another-label': 1, // G on g1
    'model-label': 1,
    'evidence-not-valid': 1, // C does not exclude P
    'inherited-from-another-label': 1,
  });
  expect((await labelledFrames(svc.pool, P)).length).toBe(5);
});

test("G reads its own labels only: P's and C's `other` never become G's", async () => {
  const g = await labelledFrames(svc.pool, G);
  expect(g.map((f) => [f.frameKey, f.label])).toEqual(
    [
      [F.c1, 'other'],
      [F.g1, G],
      [F.p1, 'other'],
    ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
  );
});

test('what a seen cluster inherits: own labels only, the reading run left out', async () => {
  const own = await ownLabels(svc.pool, P, { keys: [F.p1, F.g1, F.c1], exceptRun: RUNS.p3 });
  expect(own.get(F.p1)).toMatchObject({ label: P, workflowId: RUNS.p1 });
  expect(own.get(F.g1)).toMatchObject({ label: 'other', workflowId: RUNS.p1 });
  expect([...own.keys()].sort()).toEqual([F.p1, F.g1, F.c1].sort());
});

test('exclusion evidence: positives of labels that exclude the label, never their `other`', async () => {
  const e = await exclusionEvidence(svc.pool, P, [F.p1, F.p2, F.c1, F.g1]);
  expect([...e.values()]).toEqual([{ frameKey: F.g1, videoId: V.g, label: G, runLabel: G, source: 'weak', workflowId: RUNS.g1 }]);
  // C excludes nothing: no evidence for it; the symmetric side: G reads P's positives as evidence.
  expect((await exclusionEvidence(svc.pool, C, [F.g1, F.p1])).size).toBe(0);
  expect([...(await exclusionEvidence(svc.pool, G, [F.p1, F.p2, F.t1])).keys()].sort()).toEqual([F.p1, F.p2, F.t1].sort());
});
