/**
 * The activity heartbeat every long step uses: a timer sends the latest progress every
 * `everyMs`, so an activity whose work goes quiet for a while (a scene scan without a
 * pick, a clustering pass, a training epoch) still heartbeats; the progress can also be
 * sent at once when it matters (a commit a retried attempt resumes from). Temporal keeps
 * the last details sent: `Context.current().info.heartbeatDetails` on the next attempt.
 */
import { Context } from '@temporalio/activity';

/** A running heartbeat. Call {@link Heartbeat.stop} in a `finally`. */
export interface Heartbeat<T> {
  /** The progress the next beat sends. */
  readonly progress: T;
  /** Replace the progress and send it now. */
  set(progress: T): void;
  /** Replace the progress; the timer sends it at its next tick. */
  update(progress: T): void;
  /** Stop the timer (the last progress stays with Temporal). */
  stop(): void;
}

/**
 * Start heartbeating `initial` now and every `everyMs` (default 1 s; must be well under
 * the activity's heartbeat timeout) from the current activity's context.
 *
 * @throws Error when called outside an activity (no `Context`).
 */
export function heartbeat<T>(initial: T, everyMs = 1000): Heartbeat<T> {
  const ctx = Context.current();
  let progress = initial;
  ctx.heartbeat(progress);
  const timer = setInterval(() => ctx.heartbeat(progress), everyMs);
  return {
    get progress() {
      return progress;
    },
    set(p) {
      progress = p;
      ctx.heartbeat(p);
    },
    update(p) {
      progress = p;
    },
    stop: () => clearInterval(timer),
  };
}
