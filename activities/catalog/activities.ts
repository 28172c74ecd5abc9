import { catalogDigest, DatasetError, type SearchSummary, type StepResult } from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { runStep } from '../../lib/runs';
import { searchCatalog } from './search';

/** Input of `searchVideos`. */
export interface SearchVideosInput {
  workflowId: string;
  label: string;
  maxPositiveVideos: number;
  maxNegativeVideos: number;
  seed: number;
}

/** Catalog activities: run rows and the search step. */
export function createCatalogActivities(deps: ActivityDeps) {
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
     * Step 1, search: catalog videos matching the label, plus sampled negatives.
     *
     * @throws DatasetError (not retried) when no video matches the label.
     */
    async searchVideos(input: SearchVideosInput): Promise<StepResult<SearchSummary>> {
      return runStep(deps, input.workflowId, 'search', async () => {
        const { resolved, hits } = await searchCatalog(deps.pool, input);
        const positives = hits.filter((h) => h.role === 'positive').length;
        if (positives === 0) {
          throw new DatasetError(`no catalog video matches label "${input.label}" (searched labels, synonyms and titles for: ${resolved.terms.join(', ')})`);
        }
        const summary: SearchSummary = {
          label: resolved.label,
          positives,
          negatives: hits.length - positives,
          videoIds: hits.map((h) => h.videoId),
          catalogDigest: catalogDigest(hits),
        };
        return { summary, extra: { terms: resolved.terms, hits } };
      });
    },
  };
}
