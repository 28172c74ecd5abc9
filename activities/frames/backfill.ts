/**
 * The frames side of a backfill: which videos of a page still need frames. Uses only
 * the extraction's public pieces (`extractionParamsHash`, the content-addressed frames
 * manifest key), so it stays right whatever the extraction does inside.
 */
import { framesManifestKey, type BackfillPagePlan, type ExtractOptions, type SearchManifest } from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { readStepManifest } from '../../lib/runs';
import { extractionParamsHash } from './extract';

/** HEAD requests in flight while planning a page. */
const PLAN_CONCURRENCY = 16;

/** Frame activities of the backfill (CPU video task queue). */
export function createFrameBackfillActivities(deps: ActivityDeps) {
  const { store, pool } = deps;
  return {
    /**
     * Plan one page of a backfill: of the videos in the page's search manifest
     * (`runs/<page run>/search/`), those whose frames manifest for these options
     * (`frames/<sha256>/<params hash>/manifest.json`, written last by an extraction)
     * exists are reused as they are; the others are returned, in page order, to be
     * extracted. Read-only, so safe to retry.
     *
     * @param input.workflowId the page's run id.
     * @throws MissingArtifactError (not retried) when the page has no search manifest.
     */
    async planBackfillPage(input: { workflowId: string; page: number; options: ExtractOptions }): Promise<BackfillPagePlan> {
      const search = await readStepManifest<SearchManifest>(store, input.workflowId, 'search');
      const paramsHash = extractionParamsHash(input.options);
      const exists: boolean[] = new Array<boolean>(search.hits.length).fill(false);
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(PLAN_CONCURRENCY, search.hits.length) }, async () => {
          while (next < search.hits.length) {
            const i = next++;
            exists[i] = (await store.head(framesManifestKey(search.hits[i]!.sha256, paramsHash))) !== undefined;
          }
        }),
      );
      const reusedIds = search.hits.filter((_, i) => exists[i]).map((h) => h.videoId);
      let reusedFrames = 0;
      if (reusedIds.length) {
        reusedFrames = await repos.frames.countOfExtraction(pool, reusedIds, paramsHash);
      }
      return {
        page: input.page,
        videos: search.hits.length,
        toExtract: search.hits.filter((_, i) => !exists[i]).map((h) => h.videoId),
        reused: reusedIds.length,
        reusedFrames,
      };
    },
  };
}
