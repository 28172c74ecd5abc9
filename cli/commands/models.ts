/**
 * `reelset models list|show|evaluate|promote|rollback` and `reelset evalset
 * candidates|grow|show`: the model registry and the fixed evaluation sets.
 */
import type { Command } from 'commander';
import { userInfo } from 'node:os';
import {
  calibrateScope,
  ensureScope,
  evalSetCandidates,
  evalSetHistory,
  evaluateOnEvalSet,
  gateDecision,
  getEvalSet,
  growEvalSet,
  listModels,
  productionVersion,
  promote,
  resolveModel,
  rollback,
  transitionsOf,
  type RegisteredModel,
  type ScopeOutcome,
} from '../../activities/models';
import { balancedAccuracy, balancedAccuracyInterval, outcomesFromConfusion, parseModelRef, type GateDecision, type ModelTransition } from '../../contracts';
import { gateConfig, loadConfig } from '../../lib/config';
import { createLogger } from '../../lib/logger';
import type { ObjectStore } from '../../lib/s3';
import { EXIT, printJson, UsageError, withDataClients, type DataClients } from '../common';

/** Run `fn` with a Postgres pool and the S3 store; an unreachable Postgres is exit code 3 with its address. */
async function withClients<T>(fn: (c: DataClients) => Promise<T>): Promise<T> {
  return withDataClients(loadConfig(), {}, fn);
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
const who = (by?: string) => by ?? process.env['REELSET_ACTOR'] ?? userInfo().username;

function requireReason(reason: string | undefined): string {
  if (!reason?.trim()) throw new UsageError('--reason is required: the registry records why every transition happened');
  return reason.trim();
}

function versionOf(ref: string): { label: string; version: number } {
  const r = parseModelRef(ref);
  if (typeof r.version !== 'number') throw new UsageError(`${ref}: name a version (label@<version>)`);
  return { label: r.label, version: r.version };
}

/** The 95% bootstrap interval of a video-level balanced accuracy (the gate's), or null with no video. */
function videoInterval(confusion: number[][] | undefined): { lower: number | null; upper: number | null } | null {
  const { truth, predicted } = outcomesFromConfusion(confusion ?? []);
  return truth.length ? balancedAccuracyInterval(truth, predicted) : null;
}

function modelLine(m: RegisteredModel): string {
  const e = m.evaluation;
  const ci = e ? videoInterval(e.metrics.videos.confusion) : null;
  const score = e
    ? `eval v${e.evalVersion}: video balanced acc ${pct(balancedAccuracy(e.metrics.videos))}${ci ? ` (95% CI ${pct(ci.lower)}–${pct(ci.upper)})` : ''}, frame acc ${pct(e.metrics.frames.accuracy)}`
    : 'not evaluated on the current set';
  return `${`${m.name}@${m.version}`.padEnd(20)} ${m.stage.padEnd(10)} dataset v${m.dataset.version}  ${m.createdAt.slice(0, 19)}Z  ${score}`;
}

function printGate(g: GateDecision): void {
  const iv = g.candidate.interval;
  const minimum = iv?.minimum ?? g.config.minLowerBound;
  console.log(
    `gate: ${g.promote ? 'PASS' : 'HOLD'} (margin ${pct(g.config.margin)}, recall tolerance ${pct(g.config.recallTolerance)}, lower-bound minimum ${pct(minimum)})`,
  );
  for (const r of g.rules) console.log(`  ${r.passed ? 'ok  ' : 'FAIL'} ${r.rule}: ${r.detail}`);
}

function printScope(store: ObjectStore, s: ScopeOutcome): void {
  if (s.ok) console.log(`  out-of-scope gate: threshold ${s.threshold.toFixed(4)} (${s.calibration}, ${s.calibrationFrames} frames) in ${store.uri(s.key)}`);
  else console.log(`  out-of-scope gate NOT calibrated (${s.error.type}: ${s.error.message}); predict applies only the flat-frame rule`);
}

function printTransitions(ts: ModelTransition[]): void {
  for (const t of ts) console.log(`  ${t.at.slice(0, 19)}Z  v${t.version} ${t.from ?? '-'} -> ${t.to}  by ${t.actor}: ${t.reason}`);
}

/** Register `models` and `evalset`. */
export function registerModelCommands(program: Command): void {
  const models = program.command('models').description('the model registry: list, show, evaluate, promote, rollback');

  models
    .command('list')
    .description('published versions with their stage and their score on the fixed evaluation set')
    .argument('[label]', 'only this label')
    .option('--json', 'print as JSON')
    .action(async (label: string | undefined, opts: { json?: boolean }) =>
      withClients(async ({ pool }) => {
        const all = await listModels(pool, label?.toLowerCase());
        if (opts.json) return printJson({ models: all });
        if (all.length === 0) console.log(label ? `no published model for "${label}"` : 'no published model');
        for (const m of all) console.log(modelLine(m));
      }),
    );

  models
    .command('show')
    .description('one version (label@version, label@production, label@latest): files, evaluations, gate preview, history')
    .argument('<model>', 'label[@version|@production|@latest]')
    .option('--json', 'print as JSON')
    .action(async (ref: string, opts: { json?: boolean }) =>
      withClients(async ({ config, pool, store }) => {
        const m = await resolveModel(pool, parseModelRef(ref));
        const transitions = await transitionsOf(pool, m.name, m.version);
        const gate = m.stage === 'candidate' ? await gateDecision(pool, m.name, m.version, gateConfig(config)) : null;
        const out = { ...m, studentUri: m.studentPrefix ? store.uri(`${m.studentPrefix}/`) : null, transitions, gate };
        if (opts.json) return printJson(out);
        console.log(modelLine(m));
        console.log(`  labels: ${m.labels.join(', ')}   run: ${m.workflowId}`);
        if (out.studentUri) console.log(`  student (image model): ${out.studentUri}`);
        const e = m.evaluation;
        if (e) {
          console.log(
            `  evaluation set v${e.evalVersion}: ${e.metrics.frames.n} frames, ${e.metrics.videos.n} videos (${e.metrics.skippedFrames} frames of other classes left out)`,
          );
          for (const [l, x] of Object.entries(e.metrics.videos.perLabel)) {
            const f = e.metrics.frames.perLabel[l];
            console.log(
              `    ${l.padEnd(12)} video recall ${pct(x.recall)} precision ${pct(x.precision)} | frame recall ${pct(f?.recall)} precision ${pct(f?.precision)}`,
            );
          }
        }
        if (gate) printGate(gate);
        console.log('  history:');
        printTransitions(transitions);
      }),
    );

  models
    .command('evaluate')
    .description("evaluate a version's student on its label's fixed evaluation set (recorded once per set version)")
    .argument('<model>', 'label@version (or @production, @latest)')
    .option('--json', 'print as JSON')
    .action(async (ref: string, opts: { json?: boolean }) =>
      withClients(async ({ config, pool, store }) => {
        const m = await resolveModel(pool, parseModelRef(ref));
        const logger = createLogger('warn', 'cli');
        const e = await evaluateOnEvalSet({ config, pool, store, logger }, { name: m.name, version: m.version });
        if (opts.json) return printJson(e);
        console.log(
          `${m.name}@${m.version} on evaluation set v${e.evalVersion}: frames ${e.metrics.frames.n} acc ${pct(e.metrics.frames.accuracy)}; videos ${e.metrics.videos.n} balanced acc ${pct(balancedAccuracy(e.metrics.videos))}`,
        );
      }),
    );

  models
    .command('calibrate')
    .description("set a version's out-of-scope gate (scope.json): reference features of its training frames, threshold at a quantile of in-scope scores")
    .argument('<model>', 'label@version (or @production, @latest)')
    .option('--quantile <q>', 'share of in-scope frames the threshold may reject', '0.05')
    .option('--force', 'recompute when scope.json exists')
    .option('--json', 'print as JSON')
    .action(async (ref: string, opts: { quantile: string; force?: boolean; json?: boolean }) => {
      const q = Number(opts.quantile);
      if (!(q > 0 && q < 0.5)) throw new UsageError(`--quantile ${opts.quantile}: a number in (0, 0.5)`);
      return withClients(async ({ config, pool, store }) => {
        const m = await resolveModel(pool, parseModelRef(ref));
        const s = await calibrateScope(
          { config, pool, store, logger: createLogger('warn', 'cli') },
          { name: m.name, version: m.version, quantile: q, force: opts.force ?? false },
        );
        if (opts.json) return printJson(s);
        console.log(
          `${m.name}@${m.version}: out-of-scope threshold ${s.threshold.toFixed(4)} (quantile ${q} of ${s.calibrationFrames} in-scope frames, ${s.calibration}; ${s.references} references) -> ${store.uri(s.key)}`,
        );
      });
    });

  models
    .command('promote')
    .description(
      'promote a candidate to production if the gate passes (its video balanced accuracy on the fixed set is clearly above chance, the lower end of a bootstrap interval; it beats production by the margin and loses no label recall beyond the tolerance); calibrates its out-of-scope gate (scope.json)',
    )
    .argument('<model>', 'label@version')
    .option('--reason <text>', 'why (recorded)')
    .option('--by <name>', 'who (default: $REELSET_ACTOR or the OS user)')
    .option('--json', 'print as JSON')
    .action(async (ref: string, opts: { reason?: string; by?: string; json?: boolean }) => {
      const { label, version } = versionOf(ref);
      const reason = requireReason(opts.reason);
      return withClients(async ({ config, pool, store }) => {
        const expected = await productionVersion(pool, label);
        const logger = createLogger('warn', 'cli');
        // Evaluate both on the current set first (each once), so the gate compares like with like.
        const deps = { config, pool, store, logger };
        const gate = gateConfig(config);
        const evalOk = await gateDecision(pool, label, version, gate);
        if (evalOk.evalVersion !== null) {
          await evaluateOnEvalSet(deps, { name: label, version });
          if (expected !== null && expected !== version) await evaluateOnEvalSet(deps, { name: label, version: expected });
        }
        // A version that passes goes into production with its out-of-scope gate (scope.json):
        // calibrated before the promotion, so predict never sees it without one.
        // Its failure is reported below (and in --json), not logged on stdout.
        const quiet = { ...deps, logger: createLogger('silent', 'cli') };
        let scope: ScopeOutcome | null = (await gateDecision(pool, label, version, gate)).promote ? await ensureScope(quiet, label, version) : null;
        const res = await promote(pool, { name: label, version, actor: who(opts.by), reason, expectedProduction: expected, gate });
        if (res.promoted && !scope) scope = await ensureScope(quiet, label, version);
        if (opts.json) printJson({ ...res, scope: res.promoted ? scope : null });
        else {
          console.log(
            res.promoted
              ? `${label}@${version} is now in production`
              : `${label}@${version} held back; production stays ${expected === null ? 'none' : `v${expected}`}`,
          );
          printGate(res.gate);
          if (res.promoted && scope) printScope(store, scope);
          printTransitions(res.transitions);
        }
        if (!res.promoted) process.exitCode = EXIT.failed;
      });
    });

  models
    .command('rollback')
    .description(
      'archive the production version and put the previous production version (or --to) back; calibrates its out-of-scope gate (scope.json) if it has none',
    )
    .argument('<label>', 'the label')
    .option('--to <version>', 'the version to put in production (default: the one before)')
    .option('--reason <text>', 'why (recorded)')
    .option('--by <name>', 'who (default: $REELSET_ACTOR or the OS user)')
    .option('--json', 'print as JSON')
    .action(async (label: string, opts: { to?: string; reason?: string; by?: string; json?: boolean }) => {
      const reason = requireReason(opts.reason);
      const to = opts.to === undefined ? undefined : Number(opts.to.replace(/^v/, ''));
      if (to !== undefined && (!Number.isInteger(to) || to < 1)) throw new UsageError(`--to ${opts.to}: not a version number`);
      return withClients(async ({ config, pool, store }) => {
        const res = await rollback(pool, { name: label.toLowerCase(), ...(to !== undefined ? { to } : {}), actor: who(opts.by), reason });
        // The version back in production gets scope.json if it has none (one promoted before
        // every promotion path calibrated). After the rollback, which must not wait for it.
        const scope = await ensureScope({ config, pool, store, logger: createLogger('silent', 'cli') }, label.toLowerCase(), res.production);
        if (opts.json) return printJson({ ...res, scope });
        console.log(`${label}@${res.production} is now in production`);
        printScope(store, scope);
        printTransitions(res.transitions);
      });
    });

  const evalset = program.command('evalset').description("a label's fixed evaluation set: candidates, grow, show");

  evalset
    .command('candidates')
    .description('videos with extracted frames that no dataset version of the label trains on and the set does not hold yet')
    .argument('<label>')
    .option('--json', 'print as JSON')
    .action(async (label: string, opts: { json?: boolean }) =>
      withClients(async ({ pool, store }) => {
        const c = await evalSetCandidates(pool, store, label.toLowerCase());
        if (opts.json) return printJson({ label, candidates: c });
        if (c.length === 0) console.log(`no eligible video for "${label}"`);
        for (const v of c) console.log(`${v.videoId.padEnd(40)} ${v.catalogClass.padEnd(12)} ${v.frames} frames`);
      }),
    );

  evalset
    .command('grow')
    .description('add videos to the evaluation set (a new version: the previous frames plus theirs)')
    .argument('<label>')
    .requiredOption('--videos <ids>', 'comma-separated catalog video ids')
    .option('--reason <text>', 'why (recorded)')
    .option('--by <name>', 'who (default: $REELSET_ACTOR or the OS user)')
    .option('--frames-per-video <n>', 'frames per video, evenly spaced (default REELSET_EVAL_FRAMES_PER_VIDEO)')
    .option('--json', 'print as JSON')
    .action(async (label: string, opts: { videos: string; reason?: string; by?: string; framesPerVideo?: string; json?: boolean }) => {
      const reason = requireReason(opts.reason);
      return withClients(async ({ config, pool, store }) => {
        const n = opts.framesPerVideo === undefined ? config.REELSET_EVAL_FRAMES_PER_VIDEO : Number(opts.framesPerVideo);
        if (!Number.isInteger(n) || n < 1) throw new UsageError(`--frames-per-video ${opts.framesPerVideo}: not a positive integer`);
        const set = await growEvalSet(pool, store, {
          label,
          videoIds: opts.videos
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
          actor: who(opts.by),
          reason,
          framesPerVideo: n,
        });
        if (opts.json) return printJson({ ...set, frames: set.frames.length });
        console.log(`evaluation set ${set.label} v${set.version}: ${set.frames.length} frames of ${set.videos.length} videos ${JSON.stringify(set.counts)}`);
      });
    });

  evalset
    .command('show')
    .description('a version of the evaluation set (default: the newest) and its history')
    .argument('<label>', 'label[@version]')
    .option('--json', 'print as JSON')
    .action(async (ref: string, opts: { json?: boolean }) =>
      withClients(async ({ pool }) => {
        const [label, v] = ref.toLowerCase().split('@');
        const version = v ? Number(v.replace(/^v/, '')) : undefined;
        const set = await getEvalSet(pool, label!, version);
        const history = await evalSetHistory(pool, label!);
        if (opts.json) return printJson({ set, history });
        if (!set) {
          console.log(`"${label}" has no evaluation set${version ? ` v${version}` : ''}`);
          process.exitCode = EXIT.failed;
          return;
        }
        const sources = set.frames.reduce<Record<string, number>>((a, f) => ({ ...a, [f.labelSource]: (a[f.labelSource] ?? 0) + 1 }), {});
        console.log(
          `evaluation set ${label} v${set.version}: ${set.frames.length} frames, ${set.videos.length} videos, classes ${JSON.stringify(set.counts)}, labels from ${JSON.stringify(sources)}`,
        );
        for (const h of history)
          console.log(`  v${h.version}  ${h.createdAt.slice(0, 19)}Z  ${h.frames} frames ${h.videos} videos  by ${h.actor}: ${h.reason}`);
      }),
    );
}
