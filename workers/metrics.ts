/**
 * Prometheus metrics of a worker process, on one port (`/metrics`):
 *
 * - the Temporal SDK's own runtime metrics (`temporal_*`: polls, task slots, schedule-to-
 *   start latencies, activity and workflow task outcomes), exported by the SDK's Core
 *   (`Runtime.install` with a Prometheus bind address on a loopback port of its own) and
 *   served here together with reelset's;
 * - reelset's, from `prom-client`: the Node process (CPU, memory, event-loop lag), and the
 *   pipeline's own, observed by an activity interceptor from what each activity returns
 *   (frames extracted, embedding throughput, dedupe clusters, activity and step durations)
 *   and, on the video worker, the labelling queue depth (Label Studio tasks waiting for
 *   people) read from Postgres at scrape time.
 *
 * Scrape `http://<worker host>:<REELSET_VIDEO_METRICS_PORT or REELSET_GPU_METRICS_PORT>/metrics`.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import type { Context } from '@temporalio/activity';
import { Runtime, type ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Pool } from 'pg';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../lib/logger';
import { repos } from '../lib/repositories';
import type { ExtractBatchItem } from '../contracts';

/** A worker's metrics: the interceptor to pass to `Worker.create` and the HTTP endpoint. */
export interface WorkerMetrics {
  registry: Registry;
  /** `http://host:port/metrics`, as bound (the port may differ from the one asked for, see {@link installMetrics}). */
  url: string;
  /** `interceptors.activity` of the worker. */
  activityInterceptors: ActivityInterceptorsFactory[];
  close(): Promise<void>;
}

/** Options of {@link installMetrics}. */
export interface MetricsOptions {
  /** `video` or `gpu`: a label on every metric of the SDK (`worker_kind`). */
  kind: string;
  host: string;
  /** Port of `/metrics`; 0 = any free port. */
  port: number;
  logger: Logger;
  /** Postgres, for the labelling queue depth (video worker). */
  pool?: Pool;
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** reelset's own metrics, registered on `registry`. */
export function pipelineMetrics(registry: Registry) {
  return {
    activitySeconds: new Histogram({
      name: 'reelset_activity_duration_seconds',
      help: 'Wall time of each activity attempt, by activity type and outcome (ok, failed, cancelled)',
      labelNames: ['activity', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers: [registry],
    }),
    stepSeconds: new Histogram({
      name: 'reelset_step_duration_seconds',
      help: 'Time a pipeline step took when it did work (not reused from its manifest), by step',
      labelNames: ['step'],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200],
      registers: [registry],
    }),
    framesExtracted: new Counter({
      name: 'reelset_frames_extracted_total',
      help: 'Frames extracted from videos (stored in S3 and Postgres)',
      registers: [registry],
    }),
    framesReused: new Counter({
      name: 'reelset_frames_reused_total',
      help: 'Frames an extraction found already made with the same parameters',
      registers: [registry],
    }),
    videos: new Counter({
      name: 'reelset_videos_extracted_total',
      help: 'Video extractions, by outcome (ok, failed)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    embedded: new Counter({ name: 'reelset_frames_embedded_total', help: 'Frames embedded (computed, not found in the cache)', registers: [registry] }),
    embedCached: new Counter({ name: 'reelset_frames_embedding_cached_total', help: 'Frames whose embeddings came from the cache', registers: [registry] }),
    embedSeconds: new Counter({
      name: 'reelset_embedding_seconds_total',
      help: 'Seconds spent in embed steps that computed embeddings (throughput = rate(frames_embedded) / rate(this))',
      registers: [registry],
    }),
    embedRate: new Gauge({
      name: 'reelset_embedding_frames_per_second',
      help: 'Frames embedded per second by the last embed step that computed any',
      registers: [registry],
    }),
    clusters: new Counter({ name: 'reelset_dedupe_clusters_total', help: 'Near-duplicate clusters made by dedupe steps', registers: [registry] }),
    dedupedFrames: new Counter({ name: 'reelset_dedupe_frames_total', help: 'Frames clustered by dedupe steps', registers: [registry] }),
    duplicates: new Counter({ name: 'reelset_dedupe_duplicates_total', help: 'Frames found near-duplicates of a representative', registers: [registry] }),
    sentToLabelling: new Counter({ name: 'reelset_labelling_sent_total', help: 'Representatives sent to labelling by label steps', registers: [registry] }),
  };
}

export type PipelineMetrics = ReturnType<typeof pipelineMetrics>;

/** Count what an activity returned (its summary) into the pipeline metrics. */
export function observeActivityResult(m: PipelineMetrics, activity: string, result: unknown, seconds: number): void {
  const r = (result ?? {}) as Record<string, unknown>;
  const num = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : 0);
  if (typeof r['manifestKey'] === 'string' && r['reused'] === false && typeof r['durationMs'] === 'number') {
    const step = /\/([^/]+)\/manifest\.json$/.exec(r['manifestKey'])?.[1];
    if (step) m.stepSeconds.observe({ step }, (r['durationMs'] as number) / 1000);
  }
  switch (activity) {
    case 'extractVideo':
      m.videos.inc({ outcome: 'ok' });
      if (r['reused'] === true) m.framesReused.inc(num('frames'));
      else m.framesExtracted.inc(num('frames'));
      break;
    case 'extractVideos':
      // A batch: each video counts as extractVideo's result would, a failed one as failed.
      for (const item of Array.isArray(r['videos']) ? (r['videos'] as ExtractBatchItem[]) : []) {
        if (!item.ok) {
          m.videos.inc({ outcome: 'failed' });
          continue;
        }
        m.videos.inc({ outcome: 'ok' });
        if (item.summary.reused) m.framesReused.inc(item.summary.frames);
        else m.framesExtracted.inc(item.summary.frames);
      }
      break;
    case 'embedFrames':
      if (r['reused'] === true) break;
      m.embedded.inc(num('computed'));
      m.embedCached.inc(num('cached'));
      if (num('computed') > 0) {
        m.embedSeconds.inc(seconds);
        m.embedRate.set(num('computed') / Math.max(seconds, 1e-3));
      }
      break;
    case 'dedupeFrames':
      if (r['reused'] === true) break;
      m.clusters.inc(num('clusters'));
      m.dedupedFrames.inc(num('frames'));
      m.duplicates.inc(num('duplicates'));
      break;
    case 'labelFrames':
      if (r['reused'] !== true) m.sentToLabelling.inc(num('sent'));
      break;
    case 'prepareLabeling':
      // Human mode: the tasks the run waits for (none when its label step had already finished).
      if (r['finished'] === undefined) m.sentToLabelling.inc(num('tasks'));
      break;
  }
}

/**
 * Frames waiting for people, per label: the Label Studio tasks of runs still waiting
 * (`labeling_runs.status = 'waiting'`) that fewer distinct people have annotated than
 * the task needs (`labeling_tasks.required`: 1, 2 on validation frames, 3 after a
 * disagreement; a skipped annotation counts as done), each task once even when several
 * runs wait for it. Read from the mirror of Label Studio in Postgres at each scrape, so
 * every video worker reports the same global figure; a label whose runs wait with every
 * task done shows 0. Weak-mode runs wait for nobody and never appear.
 */
function labellingQueueGauge(registry: Registry, pool: Pool, logger: Logger): Gauge {
  return new Gauge({
    name: 'reelset_labelling_queue_depth',
    help: 'Frames sent to people (Label Studio tasks of waiting runs) not labelled by as many people as they need yet, per label',
    labelNames: ['label'],
    registers: [registry],
    async collect() {
      this.reset();
      try {
        for (const row of await repos.labelingTasks.waitingForPeopleByLabel(pool)) this.set({ label: row.label }, row.depth);
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'metrics: labelling queue depth not read');
      }
    },
  });
}

/**
 * Install the SDK's Prometheus exporter (call before any `NativeConnection` is made, once
 * per process) and start the worker's `/metrics` endpoint.
 *
 * When `port` is taken (another worker on this machine), an ephemeral port is used
 * instead and a warning says which: the worker still starts. Its URL is logged.
 *
 * @throws when the SDK runtime was already installed or created (metrics must come first).
 */
export async function installMetrics(opts: MetricsOptions): Promise<WorkerMetrics> {
  const corePort = await freeLoopbackPort();
  Runtime.install({
    telemetryOptions: {
      metrics: {
        prometheus: { bindAddress: `127.0.0.1:${corePort}`, countersTotalSuffix: true, useSecondsForDurations: true },
        globalTags: { worker_kind: opts.kind },
      },
    },
  });
  const registry = new Registry();
  registry.setDefaultLabels({ worker_kind: opts.kind });
  collectDefaultMetrics({ register: registry });
  const m = pipelineMetrics(registry);
  if (opts.pool) labellingQueueGauge(registry, opts.pool, opts.logger);

  const server = createServer((req, res) => {
    if (req.url !== '/metrics' && req.url !== '/') {
      res.writeHead(404).end('not found: try /metrics\n');
      return;
    }
    void (async () => {
      try {
        const ours = await registry.metrics();
        let core = '';
        try {
          const r = await fetch(`http://127.0.0.1:${corePort}/metrics`, { signal: AbortSignal.timeout(2000) });
          core = await r.text();
        } catch (err) {
          opts.logger.warn({ err: (err as Error).message }, 'metrics: SDK exporter did not answer');
        }
        res.writeHead(200, { 'content-type': registry.contentType }).end(`${ours}\n${core}`);
      } catch (err) {
        res.writeHead(500).end(`${(err as Error).message}\n`);
      }
    })();
  });
  let port: number;
  try {
    port = await listen(server, opts.host, opts.port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || opts.port === 0) throw err;
    port = await listen(server, opts.host, 0);
    opts.logger.warn({ asked: opts.port, port }, `metrics port ${opts.port} is in use; serving on ${port} instead`);
  }
  const url = `http://${opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host}:${port}/metrics`;
  opts.logger.info({ url, sdkExporter: `127.0.0.1:${corePort}` }, `metrics at ${url}`);

  const activityInterceptors: ActivityInterceptorsFactory[] = [
    (ctx: Context) => ({
      inbound: {
        async execute(input, next) {
          const activity = ctx.info.activityType;
          const started = performance.now();
          try {
            const result = await next(input);
            const seconds = (performance.now() - started) / 1000;
            m.activitySeconds.observe({ activity, outcome: 'ok' }, seconds);
            observeActivityResult(m, activity, result, seconds);
            return result;
          } catch (err) {
            const cancelled = ctx.cancellationSignal.aborted;
            m.activitySeconds.observe({ activity, outcome: cancelled ? 'cancelled' : 'failed' }, (performance.now() - started) / 1000);
            if (activity === 'extractVideo' && !cancelled) m.videos.inc({ outcome: 'failed' });
            throw err;
          }
        },
      },
    }),
  ];
  return {
    registry,
    url,
    activityInterceptors,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
