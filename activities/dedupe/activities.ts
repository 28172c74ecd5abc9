import {
  contactSheetKey,
  embeddingModelKey,
  NEGATIVE_LABEL,
  type DedupeCluster,
  type DedupeSummary,
  type EmbedStepManifest,
  type ExtractStepManifest,
  type SearchManifest,
  type StepResult,
  type VideoFramesManifest,
} from '../../contracts';
import { exclusionEvidence, ownLabels } from '../../domain/labelled';
import { loadTaxonomy } from '../../domain/taxonomy';
import type { ActivityDeps } from '../../lib/deps';
import { heartbeat } from '../../lib/heartbeat';
import { readStepManifest, runStep } from '../../lib/runs';
import { ModuleThread } from '../../lib/thread';
import { loadRunVectors } from '../../lib/vectors';
import { nearDuplicateClusters, type NearDuplicateOptions, type NearDuplicateResult } from './ann';
import { writeContactSheet } from './contact-sheet';
import { readLabelIndex, writeLabelSegment } from './label-index';
import { planDedupe } from './plan';
import type { FrameQuality } from './select';

/** Runs at or below this size are clustered inline (exact, a second or two); larger ones on a worker thread. */
const INLINE_MAX_ROWS = 1500;

/** Near-duplicate removal activities (CPU video task queue). */
export function createDedupeActivities(deps: ActivityDeps) {
  let thread: ModuleThread | undefined;
  return {
    /**
     * Step 4, dedupe: exact duplicates by pixel hash, then near-duplicate clusters of
     * the run's frames and of the frames earlier runs of the label kept (cosine >=
     * `threshold`, connected components found with an HNSW index, see `ann.ts`). One
     * representative per cluster by sharpness, exposure and centrality; members stay in
     * the manifest. Clusters already seen by an earlier run are marked `seenAs`; of the
     * new ones at most `labelBudget` per label, mutually distinct, go on to labelling.
     * A seen cluster lists first the earlier frames the label's own runs labelled (or that
     * carry exclusion evidence, `domain/labelled.ts`), never ordered by another label's labels.
     * Writes the run's segment of the label's index and a contact sheet per label.
     * Large runs cluster on a worker thread and heartbeat their progress.
     */
    async dedupeFrames(input: { workflowId: string; threshold: number; labelBudget?: number }): Promise<StepResult<DedupeSummary>> {
      return runStep(deps, input.workflowId, 'dedupe', async () => {
        const labelBudget = input.labelBudget ?? Number.MAX_SAFE_INTEGER;
        const search = await readStepManifest<SearchManifest>(deps.store, input.workflowId, 'search');
        const embed = await readStepManifest<EmbedStepManifest>(deps.store, input.workflowId, 'embed');
        const extract = await readStepManifest<ExtractStepManifest>(deps.store, input.workflowId, 'extract');
        const label = search.summary.label;
        const modelKey = embeddingModelKey(embed.model);
        const run = await loadRunVectors(deps.store, embed);
        const { dim, keys, videoIds } = run;
        const qualityOf = new Map<string, FrameQuality>();
        for (const v of extract.videos) {
          const fm = await deps.store.getJson<VideoFramesManifest>(v.manifestKey);
          for (const f of fm?.frames ?? []) qualityOf.set(f.key, { sharpness: f.sharpness, brightness: f.brightness });
        }
        const roleOf = new Map(search.hits.map((h) => [h.videoId, h.role]));
        const group = videoIds.map((v) => (roleOf.get(v) === 'positive' ? label : NEGATIVE_LABEL));
        const earlier = await readLabelIndex(deps, label, modelKey, dim, input.workflowId);
        // Earlier frames with a label of the label's own runs (what the label step inherits) or
        // with exclusion evidence: listed first in `seenKeys` (see planDedupe's `labelled`).
        // Labels of other labels' runs on the same (shared) frames do not count.
        const labelled = new Set<string>();
        if (earlier.keys.length) {
          const taxonomy = await loadTaxonomy(deps.pool);
          for (const k of (await ownLabels(deps.pool, label, { keys: earlier.keys, exceptRun: input.workflowId, taxonomy })).keys()) labelled.add(k);
          for (const k of (await exclusionEvidence(deps.pool, label, earlier.keys, { taxonomy })).keys()) labelled.add(k);
        }

        const hb = heartbeat<Record<string, unknown>>({ phase: 'cluster' }, 5000);
        try {
          const options: Omit<NearDuplicateOptions, 'onProgress'> = { threshold: input.threshold };
          const plan = await planDedupe({
            dim,
            run: { ...run, quality: keys.map((k) => qualityOf.get(k) ?? { sharpness: 0, brightness: 128 }), group },
            earlier,
            labelled,
            labelBudget,
            cluster: async (vectors, d) => {
              if (vectors.length / d <= INLINE_MAX_ROWS) return nearDuplicateClusters(vectors, d, options);
              thread ??= new ModuleThread(require.resolve('./cluster-worker'));
              return thread.call<NearDuplicateResult>('cluster', [vectors, d, options], {
                onProgress: (p) => hb.update(p as Record<string, unknown>),
              });
            },
          });
          const clusters: DedupeCluster[] = plan.clusters.map((c) => ({
            representative: keys[c.representative]!,
            videoId: videoIds[c.representative]!,
            members: c.members.map((m) => keys[m]!),
            videos: [...new Set(c.members.map((m) => videoIds[m]!))],
            exactDuplicates: c.exactDuplicates,
            ...(c.seenAs !== undefined ? { seenAs: c.seenAs, seenKeys: c.seenKeys } : {}),
            toLabel: c.toLabel,
            group: group[c.representative]!,
          }));
          hb.update({ phase: 'index segment and contact sheets' });
          const added = plan.added;
          const vectors = new Float32Array(added.length * dim);
          added.forEach((r, i) => vectors.set(run.vectors.subarray(r * dim, (r + 1) * dim), i * dim));
          await writeLabelSegment(deps, label, modelKey, input.workflowId, {
            vectors,
            keys: added.map((r) => keys[r]!),
            videoIds: added.map((r) => videoIds[r]!),
            pixelHashes: added.map((r) => run.pixelHashes[r]!),
          });
          const contactSheets: Record<string, string> = {};
          for (const g of [...new Set(group)].sort()) {
            const key = contactSheetKey(input.workflowId, g);
            await writeContactSheet(
              deps.store,
              key,
              clusters.filter((c) => c.group === g),
              g,
            );
            contactSheets[g] = key;
          }
          const summary: DedupeSummary = {
            frames: keys.length,
            clusters: clusters.length,
            duplicates: keys.length - clusters.length,
            exactDuplicates: plan.exactDuplicates,
            threshold: input.threshold,
            crossVideoClusters: clusters.filter((c) => c.videos.length > 1).length,
            earlierFrames: plan.earlierFrames,
            seenClusters: clusters.filter((c) => c.seenAs !== undefined).length,
            toLabel: clusters.filter((c) => c.toLabel).length,
            labelBudget,
            overBudget: plan.overBudget,
            method: plan.cluster.method,
            contactSheets,
          };
          return { summary, extra: { clusters } };
        } finally {
          hb.stop();
        }
      });
    },
  };
}
