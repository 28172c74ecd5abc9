import type { Pool } from 'pg';
import {
  DatasetError,
  datasetManifestKey,
  embeddingModelKey,
  MissingArtifactError,
  NEGATIVE_LABEL,
  stepManifestKey,
  type DatasetManifest,
  type DatasetSummary,
  type DedupeStepManifest,
  type EmbedStepManifest,
  type LabelledFrame,
  type LabelStepManifest,
  type Split,
  type StepResult,
  type VectorIndex,
  type VectorRef,
} from '../../contracts';
import { resolveVotes, type Vote } from '../../domain/agreement';
import { labelledFramesWithRepair, labelRunIds, labelsFingerprint } from '../../domain/labelled';
import { majorityLabelByVideo, splitByVideo } from '../../domain/split';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { readStepManifest, runStep } from '../../lib/runs';
import { allocateVersion, countsOf, evaluationSetVideos, evaluationSetWarning, taxonomyPaths, videosOf } from './common';
import { type LabelDatasetSummary } from './label-dataset';

/**
 * The label step's frames with human labels over weak (and model) ones: a frame whose
 * people's labels in `frame_labels` (from the label's Label Studio project) have a strict
 * majority takes it (`source: human`).
 * Frames already labelled by people keep the label step's label.
 */
export async function withHumanLabels(pool: Pool, label: string, frames: LabelledFrame[]): Promise<LabelledFrame[]> {
  const keys = frames.filter((f) => f.source !== 'human').map((f) => f.key);
  if (keys.length === 0) return frames;
  // People's labels in the label's own Label Studio project only.
  const votes = new Map<string, Vote[]>();
  for (const x of await repos.frameLabels.humanVotesInLabelProject(pool, keys, label)) {
    votes.set(x.frame_key, [
      ...(votes.get(x.frame_key) ?? []),
      { annotator: x.annotator, label: x.label, annotationId: Number(x.annotation_id), updatedAt: x.updated_at.toISOString() },
    ]);
  }
  return frames.map((f) => {
    const v = f.source === 'human' ? undefined : votes.get(f.key);
    const res = v ? resolveVotes(v, 1) : undefined;
    if (!v || res?.status !== 'agreed') return f;
    const { fallback: _f, ...rest } = f;
    return {
      ...rest,
      label: res.label,
      source: 'human' as const,
      confidence: 1,
      annotators: [...new Set(v.map((x) => x.annotator))],
      annotationIds: v.map((x) => x.annotationId),
    };
  });
}

/** Dataset activities (CPU video task queue). */
export function createDatasetActivities(deps: ActivityDeps) {
  const { store, pool } = deps;
  return {
    /**
     * Step 6, dataset: a new dataset version from the labelled frames, split by video.
     *
     * The version is allocated in Postgres once per workflow run (a retried attempt
     * gets the same version), then the manifest is written to S3.
     *
     * @throws DatasetError (not retried) when fewer than two labels have frames.
     */
    async buildDataset(input: { workflowId: string; validationFraction: number; seed: number }): Promise<StepResult<DatasetSummary>> {
      return runStep(deps, input.workflowId, 'dataset', async () => {
        const label = await readStepManifest<LabelStepManifest>(store, input.workflowId, 'label');
        const dedupe = await readStepManifest<DedupeStepManifest>(store, input.workflowId, 'dedupe');
        const embed = await readStepManifest<EmbedStepManifest>(store, input.workflowId, 'embed');
        const name = label.labels[0]!;

        const vectorOf = new Map<string, VectorRef>();
        const videoOfKey = new Map<string, string>();
        for (const v of embed.videos) {
          const idx = await store.getJson<VectorIndex>(v.indexKey);
          if (!idx) throw new MissingArtifactError(store.uri(v.indexKey), `vector index of video ${v.videoId} (written by the embed step)`);
          idx.frameKeys.forEach((k, row) => {
            vectorOf.set(k, { key: v.vectorsKey, row });
            videoOfKey.set(k, v.videoId);
          });
        }
        // Human labels over weak ones: a frame people labelled (in this run's Label Studio
        // project or any earlier one) takes their label, even when the label step had only
        // a weak one for it (a person labelled it after the run stopped waiting).
        // Videos of the label's fixed evaluation set are never trained or validated on.
        const reserved = await evaluationSetVideos(pool, name);
        const reservedWarning = evaluationSetWarning(label.frames, reserved);
        const labelled = (await withHumanLabels(pool, name, label.frames)).filter((f) => !reserved.has(f.videoId));
        const present = new Set(labelled.map((f) => f.label));
        if (present.size < 2) {
          throw new DatasetError(
            `dataset "${name}" needs frames of at least two labels, found only: ${[...present].join(', ') || 'none'} ` +
              `(add negative videos with maxNegativeVideos, or catalog more videos)`,
          );
        }
        // The split is by video. When people labelled, the label step decided it (their
        // validation frames got two people); otherwise each video is stratified by the
        // majority label of its frames.
        const decided = new Map<string, Split>();
        for (const f of labelled) if (f.split) decided.set(f.videoId, f.split);
        const videoLabel = majorityLabelByVideo(labelled);
        const computed = splitByVideo(
          videoLabel.filter((v) => !decided.has(v.videoId)),
          input.validationFraction,
          input.seed,
        );
        const splitOf = new Map<string, Split>([...computed.splitOf, ...decided]);
        const labelsWithoutValidation = [...present].filter((l) => !labelled.some((f) => f.label === l && splitOf.get(f.videoId) === 'validation')).sort();
        const warnings = labelsWithoutValidation.map((l) =>
          computed.labelsWithoutValidation.includes(l)
            ? `label "${l}" has a single video: it is in train only, so it has no validation result`
            : `label "${l}" has no validation frame: it is in train only, so it has no validation result`,
        );
        warnings.push(...reservedWarning);
        const ref = (key: string): VectorRef => {
          const r = vectorOf.get(key);
          if (!r) throw new MissingArtifactError(key, 'embedding of a labelled frame (not in any vector index of the embed step)');
          return r;
        };
        const frames = labelled.map((f) => ({
          key: f.key,
          videoId: f.videoId,
          label: f.label,
          split: splitOf.get(f.videoId)!,
          vector: ref(f.key),
          source: f.source,
        }));
        const reps = new Set([...label.frames.map((f) => f.key), ...(label.excluded ?? []).map((f) => f.key)]);
        const unlabeledTrain = dedupe.clusters
          .flatMap((c) => c.members)
          .filter((k) => !reps.has(k) && splitOf.get(videoOfKey.get(k) ?? '') === 'train')
          .map((k) => ({ key: k, videoId: videoOfKey.get(k)!, vector: ref(k) }));

        const labels = [...label.labels, ...[...present].filter((l) => !label.labels.includes(l)).sort()];
        const counts = countsOf(labels, frames);
        const videos = videosOf(splitOf);
        const taxonomy = await taxonomyPaths(pool, labels);
        const version = await allocateVersion(pool, name, input.workflowId, counts);
        const manifestKey = datasetManifestKey(name, version);
        const manifest: DatasetManifest = {
          name,
          version,
          workflowId: input.workflowId,
          createdAt: new Date().toISOString(),
          labels,
          taxonomy,
          embedding: embed.model,
          frames,
          unlabeled: unlabeledTrain,
          videos,
          counts,
          warnings,
        };
        await store.putJson(manifestKey, manifest);
        const sources: NonNullable<DatasetSummary['sources']> = {};
        for (const f of frames) sources[f.source] = (sources[f.source] ?? 0) + 1;
        const summary: DatasetSummary = { name, version, datasetKey: manifestKey, labels, counts, unlabeled: unlabeledTrain.length, warnings, sources };
        return { summary };
      });
    },

    /**
     * The retrain's dataset step: a new version of the label's dataset from everything
     * labelled so far. Frames: every frame any run of the label labelled, once, with its
     * best label among the label's own runs (people's majority, else the weak one, the
     * latest first; a frame people disagree on is left out; never a model's label; rows
     * the label's runs hold that are not the label's own, such as labels an earlier label
     * step copied from another label's runs, are left out and counted in `leftOutLabels`;
     * `domain/labelled.ts`). Each frame of the manifest says its source (`human`, `weak`).
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
