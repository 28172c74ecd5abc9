/**
 * The labelling gateway: receives Label Studio's webhooks and turns them into signals to
 * the runs waiting for people (`labelingEvent` on `<run>/label`).
 *
 * - Every call must carry `X-Reelset-Webhook-Secret` equal to `LABEL_STUDIO_WEBHOOK_SECRET`
 *   (compared in constant time); others get 401 and are logged without their body.
 * - It answers 202 at once and does the work after (Label Studio waits 1 s for an answer,
 *   inside the annotator's request, and never retries), one event at a time.
 * - It keeps the ids of the payload only (the payload holds the project's API token): it
 *   never logs a payload. Events without payload, or unreadable ones, make every waiting
 *   run of the project reconcile fully; deletion events name annotation ids only, and
 *   reach the runs whose tasks had them.
 * - When no run waits for an event (its run already finished), the gateway mirrors it
 *   into Postgres itself, so a later change or deletion in Label Studio still reaches
 *   `frame_labels`.
 * Nothing here is needed for correctness: a lost event is found by the runs'
 * reconciliation poll. It makes labels show up in seconds instead of at the next poll.
 *
 * Usage: `tsx workers/labeling-gateway.ts` (or `bash infra/workers.sh start gateway`);
 * listens on `LABEL_STUDIO_GATEWAY_HOST:LABEL_STUDIO_GATEWAY_PORT`, path `/webhooks/label-studio`,
 * and answers `GET /health`.
 */
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { applyLabelingEvent, labelStudioOf, WEBHOOK_SECRET_HEADER } from '../activities/labeling';
import { labelingChildWorkflowId, labelingEventSignal, type LabelingEvent } from '../contracts';
import { createActivityDeps, type ActivityDeps } from '../lib/deps';
import { repos } from '../lib/repositories';
import { temporalConnectionOptions } from '../lib/temporal';
import { parseWebhook, secretMatches, type WebhookEvent } from './labeling-events';

/** Largest body accepted (Label Studio's payloads are a few KB). */
const MAX_BODY = 1 << 20;
/** The path Label Studio posts to. */
export const WEBHOOK_PATH = '/webhooks/label-studio';

/** Sends a signal to a run's labelling workflow; resolves false when that workflow is not running. */
export type Signaller = (workflowId: string, event: LabelingEvent) => Promise<boolean>;

/** What the gateway did with one event. */
export interface Routed {
  event: WebhookEvent;
  signalled: string[];
  applied: { written: number; removed: number } | null;
}

/**
 * The runs waiting for an event: those whose tasks it names (by task id, or by the
 * mirrored annotations a deletion names); for an event that names nothing, every
 * waiting run of its project (of all projects when it names none).
 */
export async function waitingRuns(deps: Pick<ActivityDeps, 'pool'>, e: WebhookEvent): Promise<string[]> {
  const runs = new Set<string>();
  const add = (ids: string[]) => ids.forEach((id) => runs.add(id));
  if (e.taskIds.length) add(await repos.labelingRuns.waitingForTasks(deps.pool, e.taskIds));
  if (e.deletedAnnotationIds.length) add(await repos.labelingRuns.waitingForAnnotations(deps.pool, e.deletedAnnotationIds));
  if (e.full || (e.taskIds.length === 0 && e.annotationIds.length > 0)) add(await repos.labelingRuns.waiting(deps.pool, e.projectId));
  return [...runs].sort();
}

/**
 * Route one event: signal every waiting run; when none took it, mirror it into
 * Postgres directly.
 */
export async function routeEvent(deps: Pick<ActivityDeps, 'pool' | 'config'>, signal: Signaller, e: WebhookEvent): Promise<Routed> {
  const signalled: string[] = [];
  const payload: LabelingEvent = { action: e.action, annotationIds: e.annotationIds, deletedAnnotationIds: e.deletedAnnotationIds, full: e.full };
  for (const run of await waitingRuns(deps, e)) {
    if (await signal(labelingChildWorkflowId(run), payload)) signalled.push(run);
  }
  let applied: Routed['applied'] = null;
  if (signalled.length === 0 && (e.annotationIds.length || e.deletedAnnotationIds.length)) {
    applied = await applyLabelingEvent(deps, labelStudioOf(deps), e);
  }
  return { event: e, signalled, applied };
}

/** A Temporal signaller: `false` when the workflow is not found or already closed. */
export function temporalSignaller(client: Client): Signaller {
  return async (workflowId, event) => {
    try {
      await client.workflow.getHandle(workflowId).signal(labelingEventSignal, event);
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  };
}

/**
 * The gateway's HTTP server (not listening yet). Events are processed one at a time after
 * the answer; `drain()` waits for the queue (shutdown, tests).
 */
export function createGateway(
  deps: Pick<ActivityDeps, 'pool' | 'config' | 'logger'>,
  signal: Signaller,
): { server: Server; drain: () => Promise<void>; routed: Routed[] } {
  const { config, logger } = deps;
  let queue: Promise<void> = Promise.resolve();
  const routed: Routed[] = [];
  const handle = (e: WebhookEvent) => {
    queue = queue.then(async () => {
      try {
        const r = await routeEvent(deps, signal, e);
        routed.push(r);
        if (routed.length > 100) routed.shift();
        logger.info(
          {
            action: e.action,
            annotationIds: e.annotationIds,
            deletedAnnotationIds: e.deletedAnnotationIds,
            taskIds: e.taskIds,
            projectId: e.projectId,
            signalled: r.signalled,
            applied: r.applied,
          },
          'label studio event',
        );
      } catch (err) {
        logger.warn(
          { action: e.action, annotationIds: e.annotationIds, error: (err as Error).message },
          'label studio event not routed; the runs reconcile at their next poll',
        );
      }
    });
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const reply = (status: number, body: object) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (req.method === 'GET' && url.pathname === '/health') return reply(200, { status: 'ok' });
    if (url.pathname !== WEBHOOK_PATH) return reply(404, { error: 'not found' });
    if (req.method !== 'POST') return reply(405, { error: 'POST only' });
    const given = req.headers[WEBHOOK_SECRET_HEADER.toLowerCase()];
    if (!secretMatches(Array.isArray(given) ? given[0] : given, config.LABEL_STUDIO_WEBHOOK_SECRET)) {
      logger.warn({ from: req.socket.remoteAddress, secretHeader: given === undefined ? 'absent' : 'wrong' }, 'webhook refused: bad secret');
      req.resume();
      return reply(401, { error: `missing or wrong ${WEBHOOK_SECRET_HEADER}` });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) tooBig = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (tooBig) return reply(413, { error: `body over ${MAX_BODY} bytes` });
      const e = parseWebhook(Buffer.concat(chunks).toString('utf8'));
      reply(202, { accepted: e.action });
      handle(e);
    });
    req.on('error', () => reply(400, { error: 'bad request' }));
  });
  return { server, drain: () => queue, routed };
}

async function main(): Promise<void> {
  const deps = createActivityDeps('labeling-gateway');
  const connection = await Connection.connect(temporalConnectionOptions(deps.config));
  const client = new Client({ connection, namespace: deps.config.TEMPORAL_NAMESPACE });
  const { server, drain } = createGateway(deps, temporalSignaller(client));
  const host = deps.config.LABEL_STUDIO_GATEWAY_HOST;
  const port = deps.config.LABEL_STUDIO_GATEWAY_PORT;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  deps.logger.info({ kind: 'labeling-gateway', address: `http://${host}:${port}${WEBHOOK_PATH}` }, 'labeling-gateway worker started');
  const stop = async () => {
    server.close();
    await drain();
    await connection.close();
    await deps.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
