/**
 * The catalog domain's public surface: its activity factories (`activities.ts`) and what
 * the entry points (CLI, benches, workers) call directly. Entry points import this file,
 * never the domain's inner files (`npm run lint` checks it).
 */
export { createCatalogActivities } from './activities';
export { selectCatalogVideos, type Selection } from './backfill';
export { catalogFromFolder, readCatalogFile, readTaxonomyFile, type ResolvedEntry } from './catalog-file';
export { ingestCatalog, upsertTaxonomy } from './ingest';
export { sourceDigest } from './sources';
