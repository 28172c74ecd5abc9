import {
  InvalidInputError,
  NEGATIVE_LABEL,
  type DedupeStepManifest,
  type LabelledFrame,
  type LabelSource,
  type LabelSummary,
  type SearchManifest,
  type StepResult,
} from '../../contracts';
import { withTransaction } from '../../lib/db';
import type { ActivityDeps } from '../../lib/deps';
import { readStepManifest, runStep } from '../../lib/runs';
import { createHumanLabelingActivities } from './human';

/** Labelling activities (CPU video task queue): weak labels, and the human labelling of `human.ts`. */
export function createLabelingActivities(deps: ActivityDeps) {
  return {
    ...createHumanLabelingActivities(deps),
    /**
     * Step 5, label: give representative frames a label.
     *
     * Representatives the dedupe step marked `toLabel` (new content, within the label
     * budget) are sent to labelling. `weak` (this version): a frame of a positive video
     * gets the run's label, a frame of a sampled negative video gets {@link NEGATIVE_LABEL}.
     * Representatives of content an earlier run already had (`seenAs`) are not asked
     * again: they copy the label of an earlier frame of their cluster from `frame_labels`
     * (human over model over weak, latest first), or are sent when none has one. Representatives over the budget
     * stay unlabelled. Recorded in `frame_labels`. `human` runs use `prepareLabeling`,
     * `syncLabeling` and `finishLabeling` instead (`human.ts`), from the labelling child workflow.
     */
    async labelFrames(input: { workflowId: string; source: LabelSource }): Promise<StepResult<LabelSummary>> {
      if (input.source !== 'weak') throw new InvalidInputError(`label source ${JSON.stringify(input.source)} is not available: only "weak"`);
      return runStep(deps, input.workflowId, 'label', async () => {
        const search = await readStepManifest<SearchManifest>(deps.store, input.workflowId, 'search');
        const dedupe = await readStepManifest<DedupeStepManifest>(deps.store, input.workflowId, 'dedupe');
        const hitOf = new Map(search.hits.map((h) => [h.videoId, h]));
        const label = search.summary.label;
        const earlierKeys = dedupe.clusters.flatMap((c) => c.seenKeys ?? (c.seenAs !== undefined ? [c.seenAs] : []));
        const earlier = new Map<string, { frame_key: string; label: string; source: LabelSource; confidence: number }>();
        if (earlierKeys.length) {
          const res = await deps.pool.query<{ frame_key: string; label: string; source: LabelSource; confidence: number }>(
            `SELECT DISTINCT ON (frame_key) frame_key, label, source, confidence FROM frame_labels WHERE frame_key = ANY($1::text[])
             ORDER BY frame_key, CASE source WHEN 'human' THEN 0 WHEN 'model' THEN 1 ELSE 2 END, created_at DESC`,
            [earlierKeys],
          );
          for (const r of res.rows) earlier.set(r.frame_key, r);
        }
        let sent = 0;
        let inherited = 0;
        const frames: LabelledFrame[] = dedupe.clusters.flatMap((c): LabelledFrame[] => {
          const prior = (c.seenKeys ?? (c.seenAs !== undefined ? [c.seenAs] : [])).map((k) => earlier.get(k)).find((p) => p !== undefined);
          if (prior) {
            inherited++;
            return [{ key: c.representative, videoId: c.videoId, label: prior.label, source: prior.source, confidence: prior.confidence, inheritedFrom: prior.frame_key }];
          }
          if (!c.toLabel && c.seenAs === undefined) return [];
          sent++;
          const hit = hitOf.get(c.videoId);
          const positive = hit?.role === 'positive';
          return [{
            key: c.representative,
            videoId: c.videoId,
            label: positive ? label : NEGATIVE_LABEL,
            source: 'weak',
            confidence: positive && hit?.matchedBy === 'title' ? 0.7 : 1,
          }];
        });
        await withTransaction(deps.pool, async (c) => {
          // An inherited human label stays where it is: one row per person's annotation.
          for (const f of frames.filter((x) => x.source !== 'human')) {
            await c.query(
              `INSERT INTO frame_labels (frame_key, workflow_id, label, source, confidence) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (frame_key, workflow_id, source) WHERE source <> 'human' DO UPDATE SET label = EXCLUDED.label, confidence = EXCLUDED.confidence`,
              [f.key, input.workflowId, f.label, f.source, f.confidence],
            );
          }
        });
        const perLabel: Record<string, number> = {};
        for (const f of frames) perLabel[f.label] = (perLabel[f.label] ?? 0) + 1;
        const summary: LabelSummary = { source: 'weak', mode: 'weak', frames: frames.length, perLabel, sent, inherited };
        return { summary, extra: { labels: [label, NEGATIVE_LABEL], frames } };
      });
    },
  };
}
