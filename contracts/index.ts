/**
 * reelset's contracts: the pure definitions every part shares (workflow inputs, step
 * manifests and summaries, the S3 key layout, failure classes, Temporal policies,
 * search attributes, queries and signals), and the bootstrap intervals the promotion gate
 * and benches share (`bootstrap.ts`).
 *
 * Imports nothing Node-only (zod and Temporal's common/workflow definitions only), so
 * workflows, activities, workers, the CLI and benches import it by value. A lint rule
 * keeps it that way.
 */
export * from './bootstrap';
export * from './failures';
export * from './ids';
export * from './inputs';
export * from './keys';
export * from './lifecycle';
export * from './labeling';
export * from './manifests';
export * from './models';
export * from './operations';
export * from './retrain';
export * from './steps';
export * from './temporal';
export * from './validate';
export * from './backfill';
