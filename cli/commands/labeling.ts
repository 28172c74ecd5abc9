/**
 * `reelset labeling status <run>` and `reelset labeling finish <run>`: where people label
 * a run's frames, how far they are, and stopping the wait early.
 */
import type { Command } from 'commander';
import { WorkflowNotFoundError } from '@temporalio/client';
import { finishLabelingSignal, labelingChildWorkflowId, labelingProgressQuery, type LabelingProgress, type LabelSummary } from '../../contracts';
import { loadConfig } from '../../lib/config';
import { LabelStudioClient } from '../../lib/label-studio';
import { repos } from '../../lib/repositories';
import { printJson, ServiceUnavailableError, temporalClient, UsageError, withDataClients } from '../common';

/** What `labeling status` prints: the live answer of the waiting workflow, or the recorded end. */
export interface LabelingStatus {
  workflowId: string;
  /** `waiting` (the child answers the query) or what Postgres recorded: `finished`, `failed`. */
  status: string;
  projectUrl: string | null;
  tasks: number;
  done: number;
  labelled: number;
  agreement: { pairs: number; agreement: number | null; kappa: number | null; disagreements: number } | null;
  deadline: string | null;
  timeLeftS: number | null;
  onDeadline: string | null;
  finishedBy: string | null;
  lastSyncAt?: string | null;
  syncErrors?: number;
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const hms = (s: number) => `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;

/** Render a status for people. */
export function formatLabelingStatus(s: LabelingStatus): string {
  const lines = [`labelling of ${s.workflowId}: ${s.status}${s.finishedBy ? ` (${s.finishedBy})` : ''}`];
  lines.push(`  Label Studio: ${s.projectUrl ?? '(not sent yet)'}`);
  lines.push(`  tasks: ${s.done}/${s.tasks} done, ${s.labelled} frames labelled by people`);
  if (s.agreement) {
    const k = s.agreement.kappa === null ? 'n/a' : s.agreement.kappa.toFixed(3);
    lines.push(
      `  validation agreement: ${pct(s.agreement.agreement)} of ${s.agreement.pairs} double-labelled frames, Cohen's kappa ${k}, ${s.agreement.disagreements} disagreements`,
    );
  }
  if (s.deadline) lines.push(`  deadline: ${s.deadline}${s.timeLeftS !== null ? ` (${hms(s.timeLeftS)} left)` : ''}, then ${s.onDeadline ?? 'proceed'}`);
  if (s.syncErrors) lines.push(`  Label Studio syncs failed: ${s.syncErrors} (the wait goes on; last sync ${s.lastSyncAt ?? 'never'})`);
  return lines.join('\n');
}

function fromProgress(workflowId: string, p: LabelingProgress): LabelingStatus {
  return {
    workflowId,
    status: p.state,
    projectUrl: p.projectUrl,
    tasks: p.tasks,
    done: p.done,
    labelled: p.labelled,
    agreement: { pairs: p.validation.pairs, agreement: p.validation.agreement, kappa: p.validation.kappa, disagreements: p.validation.disagreements },
    deadline: p.deadline,
    timeLeftS: p.timeLeftS,
    onDeadline: p.onDeadline,
    finishedBy: p.finishedBy,
    lastSyncAt: p.lastSyncAt,
    syncErrors: p.syncErrors,
  };
}

/** Register the labelling commands. */
export function registerLabelingCommands(program: Command): void {
  const labeling = program.command('labeling').description('human labelling of a run in Label Studio');

  labeling
    .command('status')
    .description('where people label a run, tasks done, agreement, deadline')
    .argument('<workflowId>', 'the new-category run')
    .option('--json', 'print the status as JSON')
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      const config = loadConfig();
      const { client, close } = await temporalClient(config);
      let status: LabelingStatus | undefined;
      try {
        const handle = client.workflow.getHandle(labelingChildWorkflowId(workflowId));
        const desc = await handle.describe().catch((err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return undefined;
          throw err;
        });
        if (desc?.status.name === 'RUNNING') status = fromProgress(workflowId, await handle.query(labelingProgressQuery));
      } finally {
        await close();
      }
      if (!status) {
        // An unreachable Postgres is exit code 3 with its address (dataClients).
        status = await withDataClients(config, { max: 1 }, async ({ pool }): Promise<LabelingStatus> => {
          const row = await repos.labelingRuns.statusOf<LabelSummary & { reason?: string; tasksDone?: number }>(pool, workflowId);
          if (!row) throw new UsageError(`run ${workflowId} has no human labelling (never started, or it labels with weak labels)`);
          const s = row.summary;
          return {
            workflowId,
            status: row.status,
            projectUrl: s?.projectUrl ?? row.url,
            tasks: row.tasks,
            done: s?.tasksDone ?? 0,
            labelled: s?.human ?? 0,
            agreement:
              s && s.pairs !== undefined
                ? { pairs: s.pairs, agreement: s.agreement ?? null, kappa: s.kappa ?? null, disagreements: s.disagreements ?? 0 }
                : null,
            deadline: row.deadline.toISOString(),
            timeLeftS: null,
            onDeadline: row.on_deadline,
            finishedBy: s?.finishedBy ?? s?.reason ?? null,
          };
        });
      }
      if (opts.json) printJson(status);
      else console.log(formatLabelingStatus(status));
    });

  labeling
    .command('invite')
    .description("print Label Studio's invite link: colleagues sign up with it, then label any project")
    .action(async () => {
      const config = loadConfig();
      const ls = new LabelStudioClient(config.LABEL_STUDIO_URL, config.LABEL_STUDIO_API_TOKEN);
      if (!(await ls.healthy()))
        throw new ServiceUnavailableError(
          `Label Studio not reachable at ${config.LABEL_STUDIO_URL}; start it with \`bash infra/services.sh start label-studio\``,
        );
      console.log(await ls.inviteUrl());
    });

  labeling
    .command('finish')
    .description('stop waiting for people: finish with their labels, weak labels for the rest (marked as such)')
    .argument('<workflowId>', 'the new-category run')
    .action(async (workflowId: string) => {
      const { client, close } = await temporalClient();
      try {
        await client.workflow.getHandle(labelingChildWorkflowId(workflowId)).signal(finishLabelingSignal, { reason: 'reelset labeling finish' });
        console.error(`asked ${labelingChildWorkflowId(workflowId)} to finish`);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw new UsageError(`no labelling is waiting for run ${workflowId}`);
        throw err;
      } finally {
        await close();
      }
    });
}
