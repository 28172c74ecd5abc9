/**
 * Every patch id of the workflows, in one place.
 *
 * A workflow change that issues other commands (another activity, a child, another order)
 * than the code that recorded a history runs behind `patched(ID)`: in a run that reaches
 * the branch for the first time, `patched` records a marker and returns true; replaying a
 * history recorded before the patch existed (no marker there) it returns false and the old
 * branch issues the old commands. `test/workflow/replay.test.ts` replays the fixtures of
 * `test/fixtures/` to prove it.
 *
 * Removing a patch takes two steps: once no open run (and no fixture) predates it, replace
 * `patched(ID)` with `deprecatePatch(ID)` and delete the old branch (histories carrying the
 * marker still replay); once no open run predates that, delete the `deprecatePatch` call.
 * Runs here are short-lived but for the labelling wait (up to its deadline, 72 h by
 * default) and the nightly retrain-all; check with `temporal workflow list --query
 * 'ExecutionStatus="Running"'` before either step.
 */

/**
 * The label step's human branch (`labelStep` in `./pipeline.ts`, 2026-11-30, f9384ee):
 * people label in Label Studio through the child `<run>/label`; before, every run labelled
 * with `labelFrames` (weak labels). Removable when no run started before f9384ee is open
 * and the `nc-replay-*` fixtures (recorded before it) are dropped.
 */
export const HUMAN_LABELING_PATCH = 'human-labeling';

/**
 * The run report written as a run's last activity (`writeReport` in `./pipeline.ts`,
 * 2026-11-30, 61970c7). Removable when no new-category run started before 61970c7 is open
 * and the `nc-replay-*` fixtures are dropped.
 */
export const RUN_REPORT_PATCH = 'run-report';

/**
 * The retrain's promotion gate (`promotionGate` in `./retrain.ts`, 2026-11-30, 87e46f2):
 * evaluate the candidate against production, then promote or hold back; before, a retrain
 * ended with its candidates published. Removable when no retrain started before 87e46f2 is
 * open (no fixture predates it).
 */
export const PROMOTION_GATE_PATCH = 'promotion-gate';

/**
 * Batch predict's extraction through the shared fan-out (`./fan-out.ts`, 2026-12-07): a
 * sliding window of `concurrency` children (the next starts as soon as one finishes) and
 * continue-as-new when the history fills; before, chunks of `concurrency` children each
 * awaited whole, in one history (hence its old 2,000-video cap). Removable when no batch
 * predict started before it is open and the `replay-batch-predict*` fixtures are
 * re-recorded.
 */
export const BATCH_PREDICT_FAN_OUT_PATCH = 'batch-predict-fan-out';

/**
 * Extraction in batches (`extractVideos` activities planned by `planExtract` /
 * `planBackfillPage`, `./extract-batch.ts`, 2026-12-08): short videos several to one
 * activity; before, one `extractVideoWorkflow` child per video. Used by the extract step
 * of new-category and the retrain (`./pipeline.ts`) and by the backfill. Removable when
 * no run started before it is open and the fixtures recorded before it (`nc-replay-*`,
 * `replay-backfill*`, `replay-retrain*`) are re-recorded.
 */
export const EXTRACT_BATCHES_PATCH = 'extract-batches';
