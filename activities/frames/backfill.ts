/**
 * The frames side of a backfill: which videos of a page still need frames. Uses only
 * the extraction's public pieces (`extractionParamsHash`, the content-addressed frames
 * manifest key), so it stays right whatever the extraction does inside.
 */

/** HEAD requests in flight while planning a page. */
export const PLAN_CONCURRENCY = 16;
