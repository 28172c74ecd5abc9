/**
 * The bounded fan-out of the workflows: many child workflows (or activities), at most N at
 * once, each item's success or failure reported to the caller, and the history kept
 * bounded by continue-as-new. Used by new-category's and the retrain's extraction
 * (`./pipeline.ts`), the retrain-all over labels (`./retrain.ts`), batch predict's
 * extraction (`./batch-predict.ts`) and the backfill's videos (`./backfill.ts`).
 *
 * Two layers:
 * - {@link FanOutPool}: the bound and the callbacks. `launch(item)` starts an item
 *   (`start(item)`: an `executeChild` or an activity call); when it settles, `onSuccess` or
 *   `onFailure` runs (a failing item is reported and the others go on), then `onSettled`.
 *   The backfill, whose items come from pages planned on the way, drives a pool itself
 *   (and {@link historyFull} with its own count of the events its open pages can add).
 * - {@link fanOut}: a cursor over a list through a pool
 *   (`fanOut(new FanOutPool({...}), items, { cursor })`). Before each item it checks the
 *   history ({@link historyFull}: Temporal's `continueAsNewSuggested`, or the caller's
 *   {@link HistoryBound}); when full, it waits for the running items and returns the
 *   cursor, and the caller continues as new with it and its own state (never the items'
 *   results unless they are small: S3 keys and counts).
 *
 * Deterministic: workflow APIs only (`condition`, `workflowInfo`), items started in
 * cursor order, callbacks run in the order the history says the items settled. It adds
 * no command of its own (no timer, no marker): code moved onto it issues the commands it
 * issued before, in the same order (`test/workflow/replay.test.ts`).
 *
 * Cancellation (the workflow, or the `CancellationScope` the fan-out runs in): the wait in
 * {@link fanOut} (or {@link FanOutPool.room} / {@link FanOutPool.drain}) throws the
 * `CancelledFailure` at once and no further item starts; items already running were
 * started in that scope, so Temporal asks them to cancel (children wait for their
 * activities to finish cancelling), and each one's `onFailure` runs with a cancellation
 * (`isCancellation(err)`) when it settles. The fan-out does not wait for them: a caller
 * that must know they are gone awaits {@link FanOutPool.settled} inside
 * `CancellationScope.nonCancellable` (the backfill does, before it records the run
 * cancelled).
 */
import { condition, workflowInfo } from '@temporalio/workflow';

/** What a pool does with an item. Callbacks must not throw (a throwing `onSuccess` counts as the item's failure). */
export interface FanOutCallbacks<T, R> {
  /** Most items running at once (at least 1). */
  concurrency: number;
  /** Start one item: `executeChild(...)` or an activity call; its promise settles when the item has. */
  start(item: T): Promise<R>;
  /** The item succeeded. */
  onSuccess?(item: T, result: R): void;
  /** The item failed, or was cancelled (`isCancellation(err)`); the other items go on. */
  onFailure?(item: T, err: unknown): void;
  /** After `onSuccess` or `onFailure`: the item no longer counts as running. */
  onSettled?(item: T): void;
}

/** At most `concurrency` items at once; see the module's comment. */
export class FanOutPool<T, R> {
  /** Items started and not settled. */
  running = 0;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly callbacks: FanOutCallbacks<T, R>) {}

  /** True when another item may start now. */
  get hasRoom(): boolean {
    return this.running < this.callbacks.concurrency;
  }

  /** Start `item` now (whether or not there is room: check {@link hasRoom} or await {@link room} first). */
  launch(item: T): void {
    const { start, onSuccess, onFailure, onSettled } = this.callbacks;
    this.running++;
    const settled: Promise<void> = start(item)
      .then((r) => onSuccess?.(item, r))
      .catch((err: unknown) => onFailure?.(item, err))
      .finally(() => {
        this.running--;
        this.inFlight.delete(settled);
        onSettled?.(item);
      });
    this.inFlight.add(settled);
  }

  /** Wait until another item may start. */
  room(): Promise<void> {
    return condition(() => this.hasRoom);
  }

  /** Wait until every item started has settled (callbacks run). */
  async drain(): Promise<void> {
    await condition(() => this.running === 0);
    await Promise.all([...this.inFlight]);
  }

  /** Every running item settled or not, never throwing: await it in a non-cancellable scope after a cancellation. */
  settled(): Promise<unknown> {
    return Promise.allSettled([...this.inFlight]);
  }
}

/**
 * A history bound given by the caller, on top of Temporal's own suggestion: stop taking
 * items when the history, plus what the running items and the next one can still add,
 * plus a reserve, would reach `maxEvents`.
 */
export interface HistoryBound {
  /** Events a run's history should stay under (Temporal warns at 10,240 and stops at 51,200). */
  maxEvents: number;
  /** Most events one item adds to this history (a child: initiated, started, closed and the workflow tasks they wake). */
  eventsPerItem: number;
  /** Events kept for what the run still does after the fan-out (its close at least). */
  reserve: number;
}

/**
 * True when a fan-out should take no more work in this run: Temporal suggests
 * continue-as-new, or the history plus what the work already taken can still add
 * (`committed` events) would reach the caller's `maxEvents`.
 *
 * @param maxEvents the caller's bound, if any.
 * @param committed events the running (and next) work can still add to this history.
 */
export function historyFull(maxEvents: number | undefined, committed = 0): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || (maxEvents !== undefined && info.historyLength + committed >= maxEvents);
}

/** Options of {@link fanOut}. */
export interface FanOutOptions {
  /** Index of the first item to start: the cursor a continued run was handed (default 0). */
  cursor?: number;
  /** The caller's history bound; without it, only Temporal's suggestion stops the run. */
  historyBound?: HistoryBound;
}

/**
 * Where a fan-out stopped: `done` (every item settled, `cursor` = the list's length), or
 * not (the history is full; the items before `cursor` have settled, none after has
 * started): continue as new with `cursor` and the caller's state.
 */
export interface FanOutResult {
  done: boolean;
  cursor: number;
}

/**
 * Run `items[cursor..]` through `pool`: wait for room, check the history
 * ({@link historyFull}), start the next item; at the end (or when the history is full)
 * wait for the running items. Throws only when cancelled (see the module's comment; the
 * pool is the caller's, so it can await {@link FanOutPool.settled} then).
 *
 * @returns where it stopped; with `done: false` the caller continues as new.
 */
export async function fanOut<T, R>(pool: FanOutPool<T, R>, items: readonly T[], opts: FanOutOptions = {}): Promise<FanOutResult> {
  const first = opts.cursor ?? 0;
  let cursor = first;
  while (cursor < items.length) {
    await pool.room();
    // The caller's bound counts once this run has started an item, so that every run makes progress.
    const bound = cursor > first ? opts.historyBound : undefined;
    if (historyFull(bound?.maxEvents, bound ? (pool.running + 1) * bound.eventsPerItem + bound.reserve : 0)) {
      await pool.drain();
      return { done: false, cursor };
    }
    pool.launch(items[cursor++]!);
  }
  await pool.drain();
  return { done: true, cursor };
}
