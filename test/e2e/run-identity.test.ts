/**
 * Run identity, as a user meets it: `reelset new-category <label>` twice over the same
 * catalog attaches to the same run; after a new video of the label is ingested it starts
 * a new run (new id), which reuses every frame, embedding, near-duplicate cluster and
 * label the first run made and says so in its summary. Real services, real workers.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { catalogFromFolder } from '../../activities/catalog/catalog-file';
import { ingestCatalog } from '../../activities/catalog/ingest';
import type { NewCategoryResult } from '../../contracts';
import { createLogger } from '../../lib/logger';
import { removeVideosLike } from '../helpers/cleanup';
import { runCli } from '../helpers/cli';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { stampedVideos } from '../helpers/stamped-videos';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(600_000);

let svc: Services;
let tmp: string;
const workers: WorkerProcess[] = [];
const suffix = uniqueSuffix();
const env = { REELSET_VIDEO_TASK_QUEUE: `e2e-ident-video-${suffix}`, REELSET_GPU_TASK_QUEUE: `e2e-ident-gpu-${suffix}` };

beforeAll(async () => {
  svc = await requireServices();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-ident-'));
  workers.push(await startWorker('video', env), await startWorker('gpu', env));
});

afterAll(async () => {
  for (const w of workers) await w.kill();
  for (const like of [`ida${suffix}-%`, `idb${suffix}-%`, `idn${suffix}-%`]) if (svc) await removeVideosLike(svc, like).catch(() => undefined);
  await svc?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

type Summary = Record<string, number>;
const summaryOf = (r: NewCategoryResult, step: keyof NewCategoryResult['steps']) => r.steps[step]!.summary as Summary;

test('new videos of the label make a new run that reuses what the first one made; the same catalog attaches', async () => {
  const label = `ident-${suffix}`;
  const ingest = async (dir: string, labels: string[]) => {
    const report = await ingestCatalog(
      { ...svc, logger: createLogger('silent', 'test'), ffprobePath: svc.config.FFPROBE_PATH },
      await catalogFromFolder(dir, labels),
    );
    expect(report.failed).toEqual([]);
  };
  // Three videos of the label, two of another (the negatives come from labelled videos of other labels).
  await stampedVideos(path.join(tmp, 'a'), 3, { seconds: 2, bases: 2, prefix: `ida${suffix}` }); // test pattern, bars
  await ingest(path.join(tmp, 'a'), [label]);
  await stampedVideos(path.join(tmp, 'n'), 2, { seconds: 2, firstBase: 3, bases: 2, prefix: `idn${suffix}` }); // cellular automata
  await ingest(path.join(tmp, 'n'), [`identneg-${suffix}`]);

  const args = [
    'new-category',
    label,
    '--json',
    '--input',
    JSON.stringify({
      maxNegativeVideos: 2,
      validationFraction: 0.34,
      labeling: { mode: 'weak' },
      teacher: { epochs: 3, cutmixPerFrame: 0 },
      student: { epochsFactor: 1 },
    }),
  ];
  const first = await runCli(args, env);
  expect(first.stderr).toContain('started');
  expect(first.code).toBe(0);
  const r1 = JSON.parse(first.stdout) as NewCategoryResult;
  expect(r1.workflowId).toMatch(new RegExp(`^new-category-${label}-[0-9a-z]{11}-c[0-9a-z]{11}$`));
  // The search read the generation the id names.
  expect(r1.workflowId.endsWith(`-c${summaryOf(r1, 'search').catalogDigest as unknown as string}`)).toBe(true);

  // The same request over the same catalog: the same id, attached to the finished run.
  const again = await runCli(args, env);
  expect(again.code).toBe(0);
  expect(again.stderr).toContain(`attached to existing run ${r1.workflowId}`);
  expect((JSON.parse(again.stdout) as NewCategoryResult).workflowId).toBe(r1.workflowId);

  // A new video of the label arrives, showing what no other video does (colour gradients of a random seed).
  const seed = Math.floor(Math.random() * 1e9);
  await stampedVideos(path.join(tmp, 'b'), 1, { seconds: 2, sources: [`gradients=size={size}:rate={rate}:seed=${seed}:speed=0.05`], prefix: `idb${suffix}` });
  await ingest(path.join(tmp, 'b'), [label]);
  const second = await runCli(args, env);
  expect(second.stderr).toContain('started');
  expect(second.code).toBe(0);
  const r2 = JSON.parse(second.stdout) as NewCategoryResult;
  // A new run of the same request: same request hash, new catalog generation.
  expect(r2.workflowId).not.toBe(r1.workflowId);
  expect(r2.workflowId.replace(/-c[0-9a-z]+$/, '')).toBe(r1.workflowId.replace(/-c[0-9a-z]+$/, ''));

  // It reuses everything the first run made and says so.
  console.log(`first run: ${JSON.stringify({ extract: summaryOf(r1, 'extract'), dedupe: summaryOf(r1, 'dedupe'), label: summaryOf(r1, 'label') })}`);
  console.log(
    `second run: ${JSON.stringify({ extract: summaryOf(r2, 'extract'), embed: summaryOf(r2, 'embed'), dedupe: summaryOf(r2, 'dedupe'), label: summaryOf(r2, 'label') })}`,
  );
  const [s1, s2] = [summaryOf(r1, 'search'), summaryOf(r2, 'search')];
  expect(s2.positives).toBe(s1.positives! + 1);
  const x1 = summaryOf(r1, 'extract');
  const x2 = summaryOf(r2, 'extract');
  const oldVideos = s1.positives! + s1.negatives!;
  expect(x2.reusedVideos).toBe(oldVideos);
  expect(x2.videos).toBe(oldVideos + 1);
  const e2 = summaryOf(r2, 'embed');
  expect(e2.cached).toBe(x1.frames);
  expect(e2.computed).toBe(x2.frames! - x1.frames!);
  const d1 = summaryOf(r1, 'dedupe');
  const d2 = summaryOf(r2, 'dedupe');
  expect(d2.earlierFrames).toBeGreaterThanOrEqual(d1.clusters!);
  expect(d2.seenClusters).toBeGreaterThan(0);
  const l2 = summaryOf(r2, 'label');
  console.log(
    `second run: ${x2.reusedVideos}/${x2.videos} videos' frames reused, ${e2.cached}/${e2.frames} embeddings cached, ` +
      `${d2.seenClusters}/${d2.clusters} clusters seen before, ${l2.inherited} labels inherited, ${l2.sent} sent`,
  );
  expect(l2.inherited).toBe(d2.seenClusters);
  expect(l2.sent).toBeGreaterThan(0); // the new video's content
  // No frame made twice: one row per frame key for these videos.
  const rows = await svc.pool.query<{ n: number; keys: number }>(
    `SELECT count(*)::int AS n, count(DISTINCT s3_key)::int AS keys FROM frames WHERE video_id LIKE $1 OR video_id LIKE $2`,
    [`ida${suffix}-%`, `idb${suffix}-%`],
  );
  expect(rows.rows[0]!.n).toBe(rows.rows[0]!.keys);
});
