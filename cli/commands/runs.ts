/** `reelset new-category` and `reelset progress`: start, attach to and watch runs. */
import type { Command } from 'commander';
import {
  formatIssues,
  labelingChildWorkflowId,
  labelingProgressQuery,
  NewCategoryInput,
  newCategoryWorkflowId,
  progressQuery,
  type NewCategoryRequest,
  type Progress,
} from '../../contracts';
import { loadConfig } from '../../lib/config';
import { newCategoryWorkflow } from '../../workflows/new-category';
import { parseJsonOption, poller, printJson, startOrAttach, temporalClient, UsageError, workflowUrl } from '../common';
import { catalogClients, newCategoryGeneration } from '../generation';
import { formatSummary } from '../summary';

/**
 * The request the CLI starts: `--input` JSON (validated with the workflow's own schema
 * before anything starts) plus the label and, unless given, this machine's GPU queue.
 *
 * @throws UsageError naming the option or field that is wrong.
 */
export function newCategoryRequest(label: string, inputJson: string, gpuTaskQueue: string): { request: NewCategoryRequest; input: NewCategoryInput } {
  const extra = parseJsonOption(inputJson, '--input');
  if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new UsageError('--input must be a JSON object, e.g. \'{"maxNegativeVideos": 4}\'');
  const request = { gpuTaskQueue, ...(extra as object), label } as NewCategoryRequest;
  const parsed = NewCategoryInput.safeParse(request);
  if (!parsed.success) throw new UsageError(`invalid new-category input: ${formatIssues(parsed.error)}`);
  return { request, input: parsed.data };
}

function progressLine(p: Progress): string {
  return `  ${p.stage} (done: ${p.stepsDone.join(', ') || '-'}; videos ${p.videos.extracted + p.videos.failed}/${p.videos.total}, ${p.videos.failed} failed)`;
}

/** Register the run commands. */
export function registerRunCommands(program: Command): void {
  program
    .command('new-category')
    .description('start (or attach to) a new-category run and print its summary when it ends')
    .argument('<label>', 'the label, e.g. bicycle')
    .option('--input <json>', 'other input fields as JSON, e.g. \'{"maxNegativeVideos": 4}\'', '{}')
    .option('--id <workflowId>', 'workflow id (default: derived from the label and input)')
    .option('--no-wait', 'start and return without waiting for the result')
    .option('--json', 'print the result as JSON')
    .action(async (label: string, opts: { input: string; id?: string; wait: boolean; json?: boolean }) => {
      const config = loadConfig();
      const { request, input } = newCategoryRequest(label, opts.input, config.REELSET_GPU_TASK_QUEUE);
      // Run identity: the request plus the catalog generation it would read now (new videos of the label: a new run).
      if (!opts.id && input.catalogGeneration === undefined) {
        const clients = await catalogClients(config);
        request.catalogGeneration = input.catalogGeneration = await newCategoryGeneration(clients.pool, input).finally(() => clients.close());
      }
      const workflowId = opts.id ?? newCategoryWorkflowId(input);
      const { client, close } = await temporalClient(config);
      try {
        const { attached } = await startOrAttach(client, newCategoryWorkflow, { taskQueue: config.REELSET_VIDEO_TASK_QUEUE, workflowId, args: [request] });
        const handle = client.workflow.getHandle<typeof newCategoryWorkflow>(workflowId);
        console.error(`${attached ? 'attached to existing run' : 'started'} ${workflowId}`);
        console.error(`Temporal UI: ${workflowUrl(config, workflowId)}`);
        if (!opts.wait) {
          if (opts.json) printJson({ workflowId, attached, url: workflowUrl(config, workflowId) });
          return;
        }
        let last = '';
        const poll = poller(client, 2000, async () => {
          const p = await handle.query(progressQuery);
          // While people label: where, how far, until when.
          const l =
            p.stage === 'label'
              ? await client.workflow
                  .getHandle(labelingChildWorkflowId(workflowId))
                  .query(labelingProgressQuery)
                  .catch(() => undefined)
              : undefined;
          const line = progressLine(p) + (l?.projectUrl ? `\n  people label at ${l.projectUrl}: ${l.done}/${l.tasks} done, deadline ${l.deadline}` : '');
          if (line !== last) console.error(line);
          last = line;
        });
        try {
          const result = await handle.result();
          if (opts.json) printJson(result);
          else console.log(formatSummary(result, { temporalUi: config.TEMPORAL_UI_URL, namespace: config.TEMPORAL_NAMESPACE, bucket: config.S3_BUCKET }));
        } finally {
          await poll.stop();
        }
      } finally {
        await close();
      }
    });

  program
    .command('progress')
    .description('where a run is: stage, steps done, videos extracted (the progress query)')
    .argument('<workflowId>')
    .option('--json', 'print the answer as JSON')
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      const { client, close } = await temporalClient();
      try {
        const p = await client.workflow.getHandle(workflowId).query(progressQuery);
        if (opts.json) printJson(p);
        else console.log(`${workflowId} (${p.label})\n${progressLine(p)}`);
      } finally {
        await close();
      }
    });
}
