/**
 * The runs domain: run bookkeeping (a run's row from start to end) and the retrain's
 * plan, its view of the catalog: which of a label's videos no run of the label has used
 * yet, whether its labelled frames changed since the dataset its published model was
 * trained on, and the labels a nightly fan-out retrains.
 */
import {
  catalogDigest,
  NewCategoryInput,
  retrainInputOf,
  stepManifestKey,
  type DatasetManifest,
  type ExtractStepManifest,
  type PipelineOverrides,
  type RetrainPlan,
  type SearchHit,
  type SearchManifest,
  type SearchSummary,
  type StepResult,
} from '../../contracts';
import { resolveLabel, searchCatalog } from '../../domain/catalog-search';
import { labelledFrames, labelRunIds, labelsFingerprint } from '../../domain/labelled';
import type { ActivityDeps } from '../../lib/deps';
import { repos, type LabelVideo } from '../../lib/repositories';
import { runStep } from '../../lib/runs';

/** Caps of one retrain's new videos (the pipeline input's `maxPositiveVideos`, `maxNegativeVideos`). */
interface Caps {
  maxPositiveVideos: number;
  maxNegativeVideos: number;
  seed: number;
}

/** Videos of a label no run of it has used, as a retrain takes them. */
interface NewVideos {
  label: string;
  terms: string[];
  positives: SearchHit[];
  negatives: SearchHit[];
  positivesLeftForLater: number;
  knownUnusable: number;
}

/** Runs activities (CPU video task queue): run rows, the retrain's plan, its new-video search, the fan-out's labels. */
export function createRunActivities(deps: ActivityDeps) {
  const { pool, store } = deps;

  /**
   * Read the search and extract manifests of the label's runs not read yet into
   * `label_videos`: the videos of a run whose label step finished (`extracted`), and
   * videos that cannot be decoded (`unusable`); a finished run is then marked in
   * `label_runs_scanned` and never read again. Idempotent.
   */
  async function recordLabelRuns(label: string): Promise<void> {
    for (const run of await repos.labelVideos.unscannedRuns(pool, label)) {
      const [search, extract, labelled] = await Promise.all([
        store.getJson<SearchManifest>(stepManifestKey(run.workflow_id, 'search')),
        store.getJson<ExtractStepManifest>(stepManifestKey(run.workflow_id, 'extract')),
        store.head(stepManifestKey(run.workflow_id, 'label')),
      ]);
      const roleOf = new Map((search?.hits ?? []).map((h) => [h.videoId, h.role]));
      const rows: LabelVideo[] = [];
      // A video counts as used once the run's label step finished: a run that stopped
      // between extraction and labelling leaves its videos for the next retrain.
      if (labelled !== undefined)
        for (const v of extract?.videos ?? []) rows.push({ videoId: v.videoId, role: roleOf.get(v.videoId) ?? 'positive', outcome: 'extracted' });
      for (const f of extract?.failures ?? [])
        if (f.type === 'VideoDecodeError') rows.push({ videoId: f.videoId, role: roleOf.get(f.videoId) ?? 'positive', outcome: 'unusable' });
      if (rows.length) await repos.labelVideos.record(pool, label, run.workflow_id, rows);
      if (run.status !== 'running') await repos.labelVideos.markScanned(pool, run.workflow_id, label, rows.length);
    }
  }

  /**
   * The label's catalog videos that no run of it has used: the catalog search (labels,
   * descendants, synonyms, titles; negatives sampled from other labels, in the same
   * deterministic order as new-category), less the videos in `label_videos` and those
   * whose content is known not to decode. At most `maxPositiveVideos` positives (the
   * rest wait for the next retrain) and, only when there are new positives, at most
   * `maxNegativeVideos` new negatives.
   */
  async function newVideos(label: string, caps: Caps): Promise<NewVideos> {
    await recordLabelRuns(label);
    const { resolved, hits } = await searchCatalog(pool, {
      label,
      maxPositiveVideos: Number.MAX_SAFE_INTEGER,
      maxNegativeVideos: Number.MAX_SAFE_INTEGER,
      seed: caps.seed,
    });
    const used = new Set(await repos.labelVideos.usedBy(pool, resolved.label));
    const unusable = new Set(await repos.videos.undecodableIds(pool));
    const fresh = hits.filter((h) => !used.has(h.videoId));
    const knownUnusable = fresh.filter((h) => unusable.has(h.videoId) && h.role === 'positive').length;
    const usable = fresh.filter((h) => !unusable.has(h.videoId));
    const allPositives = usable.filter((h) => h.role === 'positive');
    const positives = allPositives.slice(0, caps.maxPositiveVideos);
    const negatives = positives.length ? usable.filter((h) => h.role === 'negative').slice(0, caps.maxNegativeVideos) : [];
    return { label: resolved.label, terms: resolved.terms, positives, negatives, positivesLeftForLater: allPositives.length - positives.length, knownUnusable };
  }

  /** Fingerprint and size of the labelled frames a dataset version was built from (cached in `dataset_fingerprints`). */
  async function datasetFingerprint(name: string, version: number, manifestKey: string): Promise<{ fingerprint: string; labelledFrames: number } | undefined> {
    const cached = await repos.datasetFingerprints.get(pool, name, version);
    if (cached) return cached;
    const ds = await store.getJson<DatasetManifest>(manifestKey);
    if (!ds) return undefined;
    const fp = { fingerprint: labelsFingerprint(ds.frames), labelledFrames: ds.frames.length };
    await repos.datasetFingerprints.cache(pool, name, version, fp);
    return fp;
  }

  return {
    /**
     * Record the start of a run in Postgres (idempotent on the workflow id; a run that
     * failed or was cancelled and is started again goes back to `running`).
     *
     * @param input.parentId the run this one is part of (a backfill's page).
     */
    async startRun(input: { workflowId: string; kind: string; label: string; input: unknown; parentId?: string }): Promise<void> {
      await repos.runs.recordStart(deps.pool, input);
    },

    /**
     * Record the end of a run: its status and small result (idempotent). A run that
     * ends failed or cancelled takes its parts still `running` (a backfill's pages) with it.
     */
    async finishRun(input: { workflowId: string; status: 'completed' | 'failed' | 'cancelled'; result: unknown }): Promise<void> {
      await repos.runs.recordEnd(deps.pool, input.workflowId, input.status, input.result);
      if (input.status !== 'completed') await repos.runs.endRunningParts(deps.pool, input.workflowId, input.status);
    },

    /**
     * The retrain's first step: what arrived for the label since its last dataset, and
     * the pipeline parameters to use. Reads Postgres (and, once per earlier run or
     * dataset, its manifests); writes nothing but those caches. Changed when:
     * `force`; or catalog videos of the label no run of it has used; or the label's
     * labelled frames (the best label of every frame its runs labelled) differ from those
     * of the dataset its latest published model was trained on (new or changed human
     * labels, frames of runs after that dataset); or the label has labelled frames and
     * no published model.
     *
     * Parameters: the new-category defaults, overridden by the input of the label's
     * latest new-category or retrain run (its `labeling` mode included: a label people
     * label is retrained with people), overridden by `overrides` (`retrainInputOf`).
     *
     * @throws InvalidInputError (not retried) when the overrides make an invalid input.
     */
    async planRetrain(input: { workflowId: string; label: string; force: boolean; overrides: PipelineOverrides }): Promise<RetrainPlan> {
      const resolved = await resolveLabel(pool, input.label);
      const label = resolved.label;
      const runIds = await labelRunIds(pool, label);
      const last = await repos.runs.latestPipelineRun(pool, runIds, input.workflowId);
      const reasons: string[] = [];
      let inputFrom: string | null = null;
      let effective: NewCategoryInput;
      const fromLast = last ? retrainInputOf(last.input as Record<string, unknown>, input.overrides, label) : undefined;
      if (fromLast?.success) {
        effective = fromLast.data;
        inputFrom = last!.workflow_id;
      } else {
        if (fromLast) reasons.push(`the parameters of run ${last!.workflow_id} no longer validate; using the defaults`);
        effective = NewCategoryInput.parse({ ...input.overrides, label });
      }

      const fresh = await newVideos(label, effective);
      const now = await labelledFrames(pool, label);
      const fingerprint = labelsFingerprint(now.map((f) => ({ key: f.frameKey, label: f.label })));
      const b = await repos.datasets.latestWithModel(pool, label);
      let baseline: RetrainPlan['labels']['baseline'] = null;
      if (b) {
        const fp = await datasetFingerprint(b.name, b.version, b.manifest_key);
        if (fp) baseline = { dataset: b.name, version: b.version, labelledFrames: fp.labelledFrames, fingerprint: fp.fingerprint };
      }

      let changed = false;
      if (input.force) {
        changed = true;
        reasons.push('forced');
      }
      if (fresh.positives.length) {
        changed = true;
        reasons.push(`${fresh.positives.length} new video(s) of "${label}"${fresh.negatives.length ? ` and ${fresh.negatives.length} new negative(s)` : ''}`);
      }
      if (fresh.positivesLeftForLater)
        reasons.push(`${fresh.positivesLeftForLater} more new video(s) left for a later retrain (maxPositiveVideos ${effective.maxPositiveVideos})`);
      if (fresh.knownUnusable) reasons.push(`${fresh.knownUnusable} new video(s) skipped: known not to decode`);
      if (baseline) {
        if (baseline.fingerprint !== fingerprint) {
          changed = true;
          reasons.push(`labelled frames changed since dataset ${baseline.dataset} v${baseline.version} (${baseline.labelledFrames} then, ${now.length} now)`);
        }
      } else if (now.length) {
        changed = true;
        reasons.push(`${now.length} labelled frame(s) and no published model`);
      }
      if (!changed) {
        reasons.push(
          baseline
            ? `nothing new since dataset ${baseline.dataset} v${baseline.version}: no unused catalog video, labels unchanged`
            : `nothing to train on: no catalog video of "${label}" and no labelled frame`,
        );
      }
      return {
        label,
        changed,
        reasons,
        newVideos: {
          positives: fresh.positives.length,
          negatives: fresh.negatives.length,
          positivesLeftForLater: fresh.positivesLeftForLater,
          knownUnusable: fresh.knownUnusable,
        },
        labels: { labelledFrames: now.length, fingerprint, baseline },
        earlierRuns: runIds.filter((id) => id !== input.workflowId).length,
        input: effective,
        inputFrom,
      };
    },

    /**
     * Step 1 of a retrain that has work: the label's videos no run of it has used, as the
     * run's `search` manifest (the same shape new-category's search writes, so extract,
     * embed, dedupe and label read it unchanged). May find none (labels changed only).
     */
    async searchNewVideos(input: { workflowId: string; label: string } & Caps): Promise<StepResult<SearchSummary>> {
      return runStep(deps, input.workflowId, 'search', async () => {
        const fresh = await newVideos(input.label, input);
        const hits = [...fresh.positives, ...fresh.negatives];
        const summary: SearchSummary = {
          label: fresh.label,
          positives: fresh.positives.length,
          negatives: fresh.negatives.length,
          videoIds: hits.map((h) => h.videoId),
          catalogDigest: catalogDigest(hits),
        };
        return { summary, extra: { terms: fresh.terms, hits, scope: 'new videos only (retrain)', positivesLeftForLater: fresh.positivesLeftForLater } };
      });
    },

    /**
     * The labels a nightly fan-out retrains: `all` = every label with a published model
     * (in name order); or the list given, each once.
     */
    async listRetrainLabels(input: { labels: 'all' | string[] }): Promise<string[]> {
      if (input.labels !== 'all') return [...new Set(input.labels)];
      return repos.models.labels(pool);
    },
  };
}
