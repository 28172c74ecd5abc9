/** Evaluation metrics: moved to the library layer (lib/metrics.ts) so the registry's evaluation on the fixed set uses the same code. */
export * from '../../lib/metrics';
