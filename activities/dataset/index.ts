/**
 * The dataset domain's public surface: its activity factories (`activities.ts`) and what
 * the entry points (CLI, benches, workers) call directly. Entry points import this file,
 * never the domain's inner files (`npm run lint` checks it).
 */
export { createDatasetActivities } from './activities';
