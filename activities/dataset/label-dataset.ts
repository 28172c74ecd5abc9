/**
 * The label's cumulative dataset (the retrain's dataset step): every frame labelled so far
 * by any run of the label, with its best label, split by video.
 */
import {
  DatasetError,
  datasetManifestKey,
  embeddingModelKey,
  NEGATIVE_LABEL,
  stepManifestKey,
  type DatasetManifest,
  type DatasetSummary,
  type DedupeStepManifest,
  type EmbedStepManifest,
  type LabelSource,
  type StepResult,
  type VectorIndex,
  type VectorRef,
} from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { labelledFramesWithRepair, labelRunIds, labelsFingerprint, type DropReason } from '../../lib/labelled';
import { repos } from '../../lib/repositories';
import { runStep } from '../../lib/runs';
import { allocateVersion, countsOf, evaluationSetVideos, evaluationSetWarning, taxonomyPaths, videosOf } from './common';
import { majorityLabelByVideo, splitByVideo } from '../../lib/split';

/** Summary of the label dataset step: the run dataset's summary, plus where its frames came from. */
export interface LabelDatasetSummary extends DatasetSummary {
  /** Runs of the label whose labelled frames are in it. */
  runs: number;
  /** Frames per label source (human, weak; a model's label is never one). */
  sources: Partial<Record<LabelSource, number>>;
  /** Fingerprint of the labelled frames it was built from (see `lib/labelled.ts`). */
  labelsFingerprint: string;
  /** Labelled frames left out: no embedding with the dataset's model. */
  withoutEmbedding: number;
  /**
   * Rows of the label's runs in `frame_labels` not read as its labels, by reason
   * (`keepLabelRow` in `lib/labelled.ts`: labels an earlier label step copied from other
   * labels' runs, model labels, ...). Absent when none.
   */
  leftOutLabels?: Partial<Record<DropReason, number>>;
}

/** Label dataset activities (CPU video task queue). */
export function createLabelDatasetActivities(deps: ActivityDeps) {
  const { store, pool } = deps;
  return {
    /**
     * The retrain's dataset step: a new version of the label's dataset from everything
     * labelled so far. Frames: every frame any run of the label labelled, once, with its
     * best label among the label's own runs (people's majority, else the weak one, the
     * latest first; a frame people disagree on is left out; never a model's label; rows
     * the label's runs hold that are not the label's own, such as labels an earlier label
     * step copied from another label's runs, are left out and counted in `leftOutLabels`;
     * `lib/labelled.ts`). Each frame of the manifest says its source (`human`, `weak`).
     * Embeddings: from the runs' embed steps, with the embedding model of this run (or of
     * the label's latest run when this one embedded nothing); frames embedded with
     * another model are left out and counted. Split by video as new-category's (same
     * seed: a video keeps its split as versions grow). Unlabelled near-duplicates of
     * training videos, from the runs' dedupe steps, for distillation. The fingerprint of
     * the labelled frames is recorded (`dataset_fingerprints`) for the next retrain's plan.
     * The version is allocated once per run.
     *
     * @throws DatasetError (not retried) when fewer than two labels have frames.
     */
    async buildLabelDataset(input: { workflowId: string; label: string; validationFraction: number; seed: number }): Promise<StepResult<LabelDatasetSummary>> {
      return runStep(deps, input.workflowId, 'dataset', async () => {
        const name = input.label;
        // Videos of the label's fixed evaluation set are never trained or validated on.
        const reserved = await evaluationSetVideos(pool, name);
        const { frames: allRows, dropped } = await labelledFramesWithRepair(pool, name, input.workflowId);
        const rows = allRows.filter((r) => !reserved.has(r.videoId));
        const runIds = [...new Set([...(await labelRunIds(pool, name)), input.workflowId])];
        const order = await repos.runs.newestFirst(pool, runIds, input.workflowId);
        const embeds: Array<{ workflowId: string; m: EmbedStepManifest }> = [];
        for (const workflowId of order) {
          const m = await store.getJson<EmbedStepManifest>(stepManifestKey(workflowId, 'embed'));
          if (m) embeds.push({ workflowId, m });
        }
        if (!embeds.length) throw new DatasetError(`no run of "${name}" has embedded frames: nothing to build a dataset from`);
        const model = embeds[0]!.m.model;
        const modelKey = embeddingModelKey(model);

        // Frame key -> vector, from the vector indexes of the videos the dataset needs.
        const neededVideos = new Set(rows.map((r) => r.videoId));
        const vectorOf = new Map<string, VectorRef>();
        const videoOfKey = new Map<string, string>();
        const readIndexes = new Set<string>();
        for (const { m } of embeds) {
          if (embeddingModelKey(m.model) !== modelKey) continue;
          for (const v of m.videos) {
            if (readIndexes.has(v.indexKey) || !neededVideos.has(v.videoId)) continue;
            readIndexes.add(v.indexKey);
            const idx = await store.getJson<VectorIndex>(v.indexKey);
            idx?.frameKeys.forEach((k, row) => {
              if (!vectorOf.has(k)) vectorOf.set(k, { key: v.vectorsKey, row });
              videoOfKey.set(k, v.videoId);
            });
          }
        }
        const usable = rows.filter((r) => vectorOf.has(r.frameKey));
        const withoutEmbedding = rows.length - usable.length;

        // Every label a frame has is a class (people put frames of one video under several
        // labels: the label, a child of it, `other`). The split is by video, stratified by
        // the majority label of each video's frames (with weak labels, its only one).
        const present = [...new Set(usable.map((f) => f.label))];
        if (present.length < 2) {
          throw new DatasetError(
            `dataset "${name}" needs frames of at least two labels, found only: ${present.join(', ') || 'none'} ` +
              `(${rows.length} labelled frames, ${withoutEmbedding} without an embedding of model ${modelKey})`,
          );
        }
        const labels = [
          name,
          ...present.filter((l) => l !== name && l !== NEGATIVE_LABEL).sort(),
          ...(present.includes(NEGATIVE_LABEL) ? [NEGATIVE_LABEL] : []),
        ];
        const videoLabel = majorityLabelByVideo(usable);
        const { splitOf, labelsWithoutValidation: singleVideo } = splitByVideo(videoLabel, input.validationFraction, input.seed);
        const withoutValidation = present.filter((l) => !usable.some((f) => f.label === l && splitOf.get(f.videoId) === 'validation')).sort();
        const warnings = withoutValidation.map((l) =>
          singleVideo.includes(l)
            ? `label "${l}" has a single video: it is in train only, so it has no validation result`
            : `label "${l}" has no validation frame: it is in train only, so it has no validation result`,
        );
        warnings.push(...evaluationSetWarning(allRows, reserved));
        if (withoutEmbedding) warnings.push(`${withoutEmbedding} labelled frame(s) left out: no embedding with model ${modelKey}`);
        const frames = usable.map((f) => ({
          key: f.frameKey,
          videoId: f.videoId,
          label: f.label,
          split: splitOf.get(f.videoId)!,
          vector: vectorOf.get(f.frameKey)!,
          source: f.source,
        }));

        // Unlabelled near-duplicates of training videos, from every run's clusters.
        const labelled = new Set(rows.map((r) => r.frameKey));
        const unlabeled: DatasetManifest['unlabeled'] = [];
        const seen = new Set<string>();
        for (const id of runIds) {
          const d = await store.getJson<DedupeStepManifest>(stepManifestKey(id, 'dedupe'));
          for (const k of d?.clusters.flatMap((c) => c.members) ?? []) {
            const videoId = videoOfKey.get(k);
            if (seen.has(k) || labelled.has(k) || !videoId || splitOf.get(videoId) !== 'train' || !vectorOf.has(k)) continue;
            seen.add(k);
            unlabeled.push({ key: k, videoId, vector: vectorOf.get(k)! });
          }
        }

        const counts = countsOf(labels, frames);
        const videos = videosOf(splitOf);
        const taxonomy = await taxonomyPaths(pool, labels);
        const version = await allocateVersion(pool, name, input.workflowId, counts);
        const datasetKey = datasetManifestKey(name, version);
        const fingerprint = labelsFingerprint(rows.map((r) => ({ key: r.frameKey, label: r.label })));
        const sources: LabelDatasetSummary['sources'] = {};
        for (const f of usable) sources[f.source] = (sources[f.source] ?? 0) + 1;
        const usedRuns = new Set(rows.map((r) => r.workflowId)).size;
        const manifest: DatasetManifest & { scope: string; sources: typeof sources; labelsFingerprint: string; runs: string[] } = {
          name,
          version,
          workflowId: input.workflowId,
          createdAt: new Date().toISOString(),
          labels,
          taxonomy,
          embedding: model,
          frames,
          unlabeled,
          videos,
          counts,
          warnings,
          scope: "label: every frame labelled so far by the label's runs",
          sources,
          labelsFingerprint: fingerprint,
          runs: runIds,
        };
        await store.putJson(datasetKey, manifest);
        await repos.datasetFingerprints.record(pool, name, version, { fingerprint, labelledFrames: rows.length });
        const summary: LabelDatasetSummary = {
          name,
          version,
          datasetKey,
          labels,
          counts,
          unlabeled: unlabeled.length,
          warnings,
          runs: usedRuns,
          sources,
          labelsFingerprint: fingerprint,
          withoutEmbedding,
          ...(Object.keys(dropped).length ? { leftOutLabels: dropped } : {}),
        };
        return { summary };
      });
    },
  };
}
