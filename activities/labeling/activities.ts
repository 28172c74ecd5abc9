import {
  InvalidInputError,
  NEGATIVE_LABEL,
  type DedupeStepManifest,
  type LabelSource,
  type LabelSummary,
  type SearchManifest,
  type StepResult,
} from '../../contracts';
import { withTransaction } from '../../lib/db';
import type { ActivityDeps } from '../../lib/deps';
import { exclusionEvidence, ownLabels } from '../../lib/labelled';
import { readStepManifest, runStep } from '../../lib/runs';
import { loadTaxonomy } from '../../lib/taxonomy';
import { createHumanLabelingActivities } from './human';
import { upsertRunLabel } from './provenance';
import { decideWeakLabels, earlierKeysOf, evidenceKeysOf } from './weak';

/** Labelling activities (CPU video task queue): weak labels, and the human labelling of `human.ts`. */
export function createLabelingActivities(deps: ActivityDeps) {
  return {
    ...createHumanLabelingActivities(deps),
    /**
     * Step 5, label: give representative frames a label (`weak` mode).
     *
     * Representatives the dedupe step marked `toLabel` (new content, within the label
     * budget) are labelled: a frame of a positive video gets the run's label, a frame of a
     * sampled negative video gets {@link NEGATIVE_LABEL}. Representatives of content an
     * earlier run of the label already had (`seenAs`) are not labelled again: they copy the
     * label of an earlier frame of their cluster, read from the label's own runs only
     * (`ownLabels` in `lib/labelled.ts`: people's majority over weak labels, never a model's
     * label, never another label's; the rows an earlier version copied across labels are
     * left out), or are labelled like new content when none has one. A representative that
     * has no label of its own runs and whose cluster holds a positive of a label the
     * taxonomy says excludes this one is `other`, marked as evidence (`decideWeakLabels` in
     * `weak.ts`). Representatives over the budget stay unlabelled.
     *
     * Recorded in `frame_labels` with its provenance (own, inherited from which run and
     * frame, or evidence); an inherited human label stays where it is (one row per
     * person's annotation). Checkpointed: a retried attempt returns the manifest, and an
     * attempt cut short before it rewrites the same rows.
     *
     * `human` runs use `prepareLabeling`, `syncLabeling` and `finishLabeling` instead
     * (`human.ts`), from the labelling child workflow.
     *
     * @throws InvalidInputError (not retried) for a source other than `weak`;
     *   MissingArtifactError when the search or dedupe manifest is missing.
     */
    async labelFrames(input: { workflowId: string; source: LabelSource }): Promise<StepResult<LabelSummary>> {
      if (input.source !== 'weak') throw new InvalidInputError(`label source ${JSON.stringify(input.source)} is not available: only "weak"`);
      return runStep(deps, input.workflowId, 'label', async () => {
        const search = await readStepManifest<SearchManifest>(deps.store, input.workflowId, 'search');
        const dedupe = await readStepManifest<DedupeStepManifest>(deps.store, input.workflowId, 'dedupe');
        const label = search.summary.label;
        const taxonomy = await loadTaxonomy(deps.pool);
        const earlierKeys = dedupe.clusters.flatMap(earlierKeysOf);
        const own = earlierKeys.length ? await ownLabels(deps.pool, label, { keys: earlierKeys, exceptRun: input.workflowId, taxonomy }) : new Map();
        // Exclusion evidence is only needed where the label's own runs say nothing.
        const open = dedupe.clusters.filter((c) => (c.toLabel || c.seenAs !== undefined) && !earlierKeysOf(c).some((k) => own.has(k)));
        const evidence = await exclusionEvidence(deps.pool, label, open.flatMap(evidenceKeysOf), { taxonomy });
        const { frames, sent, inherited, evidence: evidenced } = decideWeakLabels(label, dedupe.clusters, search.hits, own, evidence);
        await withTransaction(deps.pool, async (c) => {
          // An inherited human label stays where it is: one row per person's annotation.
          for (const f of frames.filter((x) => x.source !== 'human')) await upsertRunLabel(c, input.workflowId, f);
        });
        const perLabel: Record<string, number> = {};
        for (const f of frames) perLabel[f.label] = (perLabel[f.label] ?? 0) + 1;
        const summary: LabelSummary = { source: 'weak', mode: 'weak', frames: frames.length, perLabel, sent, inherited, evidence: evidenced };
        return { summary, extra: { labels: [label, NEGATIVE_LABEL], frames } };
      });
    },
  };
}
