/**
 * Labelling reconciliation benchmark: what one full reconciliation of a run's tasks costs
 * Label Studio, reelset's way (a cheap listing of the tasks' `updated_at`, then only the
 * tasks that moved fetched with their annotations) against the plain way (every task with
 * its annotations and predictions, `fields=all`), side by side on the same project.
 *
 * It makes a scratch project of `--tasks` tasks (default 1000) in the real Label Studio,
 * annotates `--annotated` of them (default 100), records them as a run's tasks in
 * Postgres (fake video and frame rows), and times, alternating, `--repeat` times:
 *   (a) the plain listing;
 *   (b) reelset's reconciliation with nothing changed;
 *   (c) reelset's reconciliation after `--changes` annotations changed (default 10).
 * Everything it made is deleted at the end.
 *
 * Usage: `npx tsx bench/labeling.ts [--tasks 1000] [--annotated 100] [--changes 10] [--repeat 3]`
 * (`npm run bench:labeling -- [options]` installs, starts the services and migrates first).
 */
import { reconcileProjectTasks } from '../activities/labeling';
import { loadConfig } from '../lib/config';
import { createPool } from '../lib/db';
import { LabelStudioClient, type LsResult } from '../lib/label-studio';
import { repos } from '../lib/repositories';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? Number(process.argv[i + 1]) : fallback;
}
const choose = (c: string): LsResult[] => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [c] } }];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const n = arg('tasks', 1000);
  const annotated = arg('annotated', 100);
  const changes = arg('changes', 10);
  const repeat = arg('repeat', 3);
  const config = loadConfig();
  const ls = new LabelStudioClient(config.LABEL_STUDIO_URL, config.LABEL_STUDIO_API_TOKEN);
  const pool = createPool(config, 2);
  const tag = `bench-labeling-${Date.now().toString(36)}`;
  const sha = `${'b'.repeat(52)}${Date.now().toString(16).padStart(12, '0')}`.slice(0, 64);
  const project = await ls.createProject({
    title: tag,
    label_config: '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="a"/><Choice value="b"/></Choices></View>',
  });
  try {
    await repos.runs.recordStart(pool, { workflowId: tag, kind: 'bench', label: 'bench', input: {} });
    await repos.videos.insertPlaceholder(pool, tag, sha);
    const ids: number[] = [];
    for (let i = 0; i < n; i += 100) {
      const batch = Array.from({ length: Math.min(100, n - i) }, (_, j) => `frames/${sha}/0123456789abcdef/${String(i + j).padStart(9, '0')}.jpg`);
      const got = await ls.importTasks(
        project.id,
        batch.map((key) => ({
          data: { image: `s3://${config.S3_BUCKET}/${key}`, frameKey: key, runId: tag },
          predictions: [{ model_version: 'weak-search', score: 1, result: choose('a') }],
        })),
      );
      await repos.frames.insertSynthetic(pool, tag, batch, i);
      await repos.labelingTasks.recordSynthetic(pool, tag, project.id, tag, got, batch);
      ids.push(...got);
    }
    const made = [];
    for (const id of ids.slice(0, annotated)) made.push(await ls.createAnnotation(id, { result: choose('b') }));
    // A first reconciliation mirrors everything.
    await reconcileProjectTasks(pool, ls, project.id, ids);
    console.log(`project ${project.id}: ${n} tasks, ${annotated} annotated; Label Studio ${config.LABEL_STUDIO_URL}; ${repeat} alternating passes, medians`);
    const plain: number[] = [];
    const still: number[] = [];
    const moved: number[] = [];
    for (let r = 0; r < repeat; r++) {
      let t = performance.now();
      await ls.allTasks(project.id, [{ filter: 'filter:tasks:id', operator: 'in', type: 'Number', value: { min: ids[0], max: ids.at(-1) } }]);
      plain.push(performance.now() - t);
      t = performance.now();
      const a = await reconcileProjectTasks(pool, ls, project.id, ids);
      still.push(performance.now() - t);
      if (a.written || a.removed) throw new Error(`nothing changed, yet the reconciliation wrote ${a.written} and removed ${a.removed}`);
      for (const x of made.slice(r * changes, (r + 1) * changes)) await ls.updateAnnotation(x.id, { result: choose('a') });
      t = performance.now();
      const b = await reconcileProjectTasks(pool, ls, project.id, ids);
      moved.push(performance.now() - t);
      if (b.written !== Math.min(changes, Math.max(0, made.length - r * changes)))
        throw new Error(`expected ${changes} changed annotations, the reconciliation wrote ${b.written}`);
    }
    const base = median(plain);
    const row = (what: string, ms: number) => console.log(`| ${what} | ${(ms / 1000).toFixed(2)} s | ${(ms / base).toFixed(3)} |`);
    console.log('| one full reconciliation of the run | time | ratio to (a) |');
    console.log('| --- | --- | --- |');
    row('(a) every task with annotations and predictions (`fields=all`)', base);
    row('(b) reelset: `updated_at` listing, nothing changed', median(still));
    row(`(c) reelset: ${changes} annotations changed`, median(moved));
  } finally {
    await ls.deleteProject(project.id);
    await repos.labelingAnnotations.removeOfProject(pool, project.id);
    await repos.runs.removeWithParts(pool, [tag]);
    await repos.videos.remove(pool, [tag]);
    await pool.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
