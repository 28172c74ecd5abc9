import {
  InvalidInputError,
  labelingPlanKey,
  MissingArtifactError,
  NEGATIVE_LABEL,
  stepManifestKey,
  TransientError,
  type DedupeStepManifest,
  type ExcludedFrame,
  type LabelingCounts,
  type LabelingOptions,
  type LabelledFrame,
  type LabelSource,
  type LabelStepManifest,
  type LabelSummary,
  type PredictionsFile,
  type PrepareLabelingResult,
  type SearchManifest,
  type StepResult,
} from '../../contracts';
import { resolveVotes, type Vote } from '../../domain/agreement';
import { exclusionEvidence, ownLabels } from '../../domain/labelled';
import { splitByVideo } from '../../domain/split';
import { loadTaxonomy } from '../../domain/taxonomy';
import { withTransaction } from '../../lib/db';
import type { ActivityDeps } from '../../lib/deps';
import { type LabelStudioClient } from '../../lib/label-studio';
import { repos } from '../../lib/repositories';
import { readStepManifest, runStep } from '../../lib/runs';
import { applyLabelingEvent, heartbeat, IMPORT_BATCH, labelStudioOf, orderLabels, round4 } from './human';
import { countsOf, reconcileProjectTasks, removeAnnotations, runVotes } from './mirror';
import { modelPrediction, orderForPeople, taskOf, uncertaintyOf, type LabelingPlan, type PlannedFrame } from './plan';
import { ensureProject } from './project';
import { upsertRunLabel } from './provenance';
import { decideWeakLabels, earlierKeysOf, evidenceFor, evidenceKeysOf } from './weak';

/** Labelling activities (CPU video task queue): weak labels, and the human labelling of `human.ts`. */
export function createLabelingActivities(deps: ActivityDeps) {
  const { store, pool, config, logger } = deps;

  /** Mirror a run's tasks fully, raise the people needed on validation frames people disagree on, and count. */
  async function syncRun(ls: LabelStudioClient | undefined, workflowId: string): Promise<ReturnType<typeof countsOf> & { syncError?: string }> {
    let syncError: string | undefined;
    const rows = await repos.labelingTasks.ofRun(pool, workflowId);
    if (ls && rows.length) {
      try {
        const projectId = rows[0]!.projectId;
        const ids = rows.map((r) => r.taskId);
        const { missing } = await reconcileProjectTasks(pool, ls, projectId, ids, (seen) => heartbeat({ listed: seen, of: ids.length }));
        if (missing.length)
          logger.warn({ workflowId, missing: missing.slice(0, 20), count: missing.length }, 'tasks deleted in Label Studio: they cannot be labelled');
        await adjudicate(ls, workflowId);
      } catch (err) {
        syncError = (err as Error).message;
      }
    }
    return { ...countsOf(await runVotes(pool, workflowId)), ...(syncError ? { syncError } : {}) };
  }

  /**
   * A frame that needs several people and whose people disagree (no majority) asks for
   * one more: its task's overlap is raised to 3, so Label Studio's queue shows it to a
   * third person, whose label decides by majority. Three different labels stay a
   * disagreement: the frame is left out of the dataset.
   */
  async function adjudicate(ls: LabelStudioClient, workflowId: string): Promise<void> {
    const tasks = await runVotes(pool, workflowId);
    for (const [taskId, t] of tasks) {
      if (t.required < 2 || t.required >= 3) continue;
      const r = resolveVotes(t.votes, t.required);
      if (r.status !== 'disagreed') continue;
      // Label Studio does not recompute `is_labeled` when the overlap changes: say it, so its queue offers the task again.
      await ls.patchTask(taskId, { overlap: 3, is_labeled: r.people >= 3 });
      await repos.labelingTasks.requireThirdPerson(pool, taskId);
      logger.info({ workflowId, taskId, frameKey: t.frameKey }, 'people disagree on a validation frame: a third person is asked');
    }
  }

  return {
    /**
     * Step 5, label: give representative frames a label (`weak` mode).
     *
     * Representatives the dedupe step marked `toLabel` (new content, within the label
     * budget) are labelled: a frame of a positive video gets the run's label, a frame of a
     * sampled negative video gets {@link NEGATIVE_LABEL}. Representatives of content an
     * earlier run of the label already had (`seenAs`) are not labelled again: they copy the
     * label of an earlier frame of their cluster, read from the label's own runs only
     * (`ownLabels` in `domain/labelled.ts`: people's majority over weak labels, never a model's
     * label, never another label's; the rows an earlier version copied across labels are
     * left out), or are labelled like new content when none has one. A representative that
     * has no label of its own runs and whose cluster holds a positive of a label the
     * taxonomy says excludes this one is `other`, marked as evidence (`decideWeakLabels` in
     * `weak.ts`). Representatives over the budget stay unlabelled.
     *
     * Recorded in `frame_labels` with its provenance (own, inherited from which run and
     * frame, or evidence); an inherited human label stays where it is (one row per
     * person's annotation). Checkpointed: a retried attempt returns the manifest, and an
     * attempt cut short before it rewrites the same rows.
     *
     * `human` runs use `prepareLabeling`, `syncLabeling` and `finishLabeling` instead
     * (`human.ts`), from the labelling child workflow.
     *
     * @throws InvalidInputError (not retried) for a source other than `weak`;
     *   MissingArtifactError when the search or dedupe manifest is missing.
     */
    async labelFrames(input: { workflowId: string; source: LabelSource }): Promise<StepResult<LabelSummary>> {
      if (input.source !== 'weak') throw new InvalidInputError(`label source ${JSON.stringify(input.source)} is not available: only "weak"`);
      return runStep(deps, input.workflowId, 'label', async () => {
        const search = await readStepManifest<SearchManifest>(deps.store, input.workflowId, 'search');
        const dedupe = await readStepManifest<DedupeStepManifest>(deps.store, input.workflowId, 'dedupe');
        const label = search.summary.label;
        const taxonomy = await loadTaxonomy(deps.pool);
        const earlierKeys = dedupe.clusters.flatMap(earlierKeysOf);
        const own = earlierKeys.length ? await ownLabels(deps.pool, label, { keys: earlierKeys, exceptRun: input.workflowId, taxonomy }) : new Map();
        // Exclusion evidence is only needed where the label's own runs say nothing.
        const open = dedupe.clusters.filter((c) => (c.toLabel || c.seenAs !== undefined) && !earlierKeysOf(c).some((k) => own.has(k)));
        const evidence = await exclusionEvidence(deps.pool, label, open.flatMap(evidenceKeysOf), { taxonomy });
        const { frames, sent, inherited, evidence: evidenced } = decideWeakLabels(label, dedupe.clusters, search.hits, own, evidence);
        await withTransaction(deps.pool, async (c) => {
          // An inherited human label stays where it is: one row per person's annotation.
          for (const f of frames.filter((x) => x.source !== 'human')) await upsertRunLabel(c, input.workflowId, f);
        });
        const perLabel: Record<string, number> = {};
        for (const f of frames) perLabel[f.label] = (perLabel[f.label] ?? 0) + 1;
        const summary: LabelSummary = { source: 'weak', mode: 'weak', frames: frames.length, perLabel, sent, inherited, evidence: evidenced };
        return { summary, extra: { labels: [label, NEGATIVE_LABEL], frames } };
      });
    },

    /**
     * Send a run's representatives to people: the label's project (created or reused),
     * one task per representative that needs a person (a frame a person labelled in an
     * earlier run of the label, in its own project, is inherited instead; a task an earlier
     * run made for the same frame is reused, never duplicated), with the weak label and the
     * model's prediction as pre-annotations, most uncertain first. The weak label is `other`
     * where the frame's cluster holds a positive of a label the taxonomy says excludes this
     * one (`evidenceFor` in `weak.ts`; the task's hint says so); another label's `other` is
     * never read. Validation frames (the split is decided
     * here, by video) need `validationAnnotators` distinct people (task overlap).
     * Records the tasks in `labeling_tasks` batch by batch, so a retried attempt finds
     * the tasks an interrupted one imported (by frame key) and imports only the rest.
     *
     * @returns the project, task counts and the deadline; `finished` when the label
     *   step's manifest already exists (nothing else done).
     * @throws TransientError when Label Studio is unreachable (retried); LabelStudioError when it refuses a call.
     */
    async prepareLabeling(input: {
      workflowId: string;
      label: string;
      options: LabelingOptions;
      validationFraction: number;
      seed: number;
      /** ISO 8601 deadline, decided by the workflow. */
      deadline: string;
      predictionsKey: string | null;
    }): Promise<PrepareLabelingResult> {
      const wf = input.workflowId;
      const done = await store.getJson<LabelStepManifest>(stepManifestKey(wf, 'label'));
      if (done) {
        return {
          projectId: done.labelStudio?.projectId ?? 0,
          projectUrl: done.labelStudio?.projectUrl ?? '',
          tasks: 0,
          created: 0,
          reused: 0,
          inherited: 0,
          validationTasks: 0,
          deadline: input.deadline,
          model: null,
          finished: { ...done.summary, manifestKey: stepManifestKey(wf, 'label'), reused: true, durationMs: done.durationMs },
        };
      }
      const ls = labelStudioOf(deps);
      const { projectId, projectUrl, choices } = await ensureProject(deps, ls, input.label);
      heartbeat({ projectId });

      // Everything the project has: existing tasks by frame, and the annotations of ours mirrored.
      const { listed } = await reconcileProjectTasks(pool, ls, projectId, undefined, (seen) => heartbeat({ listed: seen }));
      const taskOfFrame = new Map<string, { id: number; overlap: number }>();
      for (const t of listed.sort((a, b) => a.id - b.id)) {
        const k = t.data['frameKey'];
        if (typeof k === 'string' && !taskOfFrame.has(k)) taskOfFrame.set(k, t);
      }

      const search = await readStepManifest<SearchManifest>(store, wf, 'search');
      const dedupe = await readStepManifest<DedupeStepManifest>(store, wf, 'dedupe');
      const hitOf = new Map(search.hits.map((h) => [h.videoId, h]));
      const candidates = dedupe.clusters.filter((c) => c.toLabel || c.seenAs !== undefined);

      // Human labels of earlier runs: the representative itself, or an earlier frame of its cluster.
      const priorKeys = [...new Set(candidates.flatMap((c) => [c.representative, ...earlierKeysOf(c)]))];
      const prior = new Map<string, Vote[]>();
      if (priorKeys.length) {
        // Only this label's project: a frame a person labelled for another label says nothing of this one.
        for (const x of await repos.frameLabels.humanVotesInProject(pool, priorKeys, projectId)) {
          prior.set(x.frame_key, [
            ...(prior.get(x.frame_key) ?? []),
            { annotator: x.annotator, label: x.label, updatedAt: x.updated_at.toISOString(), annotationId: Number(x.annotation_id) },
          ]);
        }
      }
      const humanLabelOf = (key: string) => {
        const votes = prior.get(key);
        if (!votes) return undefined;
        const r = resolveVotes(votes, 1);
        return r.status === 'agreed' ? { label: r.label, votes } : undefined;
      };

      // The split, by video, per label group (the dataset step keeps it).
      const videos = [...new Set(candidates.map((c) => c.videoId))].map((videoId) => ({
        videoId,
        label: hitOf.get(videoId)?.role === 'positive' ? input.label : NEGATIVE_LABEL,
      }));
      const { splitOf } = splitByVideo(videos, input.validationFraction, input.seed);

      const predictions = input.predictionsKey ? await store.getJson<PredictionsFile>(input.predictionsKey) : undefined;
      const timestampOf = await repos.frames.timestampsOf(
        pool,
        candidates.map((c) => c.representative),
      );

      // Exclusion evidence, for the frames people are asked about: a positive of a label the
      // taxonomy says excludes this one makes `other` the guess (never another label's `other`).
      const withoutPrior = candidates.filter((c) => ![c.representative, ...earlierKeysOf(c)].some((k) => humanLabelOf(k) !== undefined));
      const evidence = await exclusionEvidence(pool, search.summary.label, withoutPrior.flatMap(evidenceKeysOf));
      const roleOf = (v: string) => hitOf.get(v)?.role;

      const inherited: LabelledFrame[] = [];
      const planned: PlannedFrame[] = [];
      for (const c of candidates) {
        const split = splitOf.get(c.videoId) ?? 'train';
        const earlierKeys = [c.representative, ...earlierKeysOf(c)];
        const found = earlierKeys.map((k) => ({ k, h: humanLabelOf(k) })).find((x) => x.h !== undefined);
        if (found?.h) {
          inherited.push({
            key: c.representative,
            videoId: c.videoId,
            label: found.h.label,
            source: 'human',
            confidence: 1,
            split,
            annotators: [...new Set(found.h.votes.map((v) => v.annotator))],
            annotationIds: found.h.votes.map((v) => v.annotationId),
            ...(found.k !== c.representative ? { inheritedFrom: found.k } : {}),
          });
          continue;
        }
        const hit = hitOf.get(c.videoId);
        const positive = hit?.role === 'positive';
        const e = evidenceFor(c, evidence, roleOf);
        const weakConfidence = !e && positive && hit?.matchedBy === 'title' ? 0.7 : 1;
        const model = modelPrediction(predictions, c.representative, choices);
        planned.push({
          key: c.representative,
          videoId: c.videoId,
          timestampS: timestampOf.get(c.representative) ?? null,
          split,
          required: split === 'validation' ? input.options.validationAnnotators : 1,
          weakLabel: positive && !e ? input.label : NEGATIVE_LABEL,
          weakConfidence,
          model,
          uncertainty: uncertaintyOf(weakConfidence, model),
          ...(e ? { evidence: { frameKey: e.frameKey, label: e.label, runLabel: e.runLabel, source: e.source, workflowId: e.workflowId } } : {}),
        });
      }
      const frames = orderForPeople(planned);
      const modelVersion = predictions ? `${predictions.model.name}-v${predictions.model.version}-${predictions.model.role}` : null;

      // Reuse tasks that exist for the same frame; import the rest in batches, recording each batch.
      const record = async (f: PlannedFrame) => {
        await repos.labelingTasks.record(pool, {
          taskId: f.taskId!,
          workflowId: wf,
          projectId,
          frameKey: f.key,
          videoId: f.videoId,
          split: f.split,
          required: f.required,
          weakLabel: f.weakLabel,
          weakConfidence: f.weakConfidence,
          uncertainty: f.uncertainty,
        });
      };
      let reused = 0;
      let created = 0;
      const toImport: PlannedFrame[] = [];
      for (const f of frames) {
        const t = taskOfFrame.get(f.key);
        if (!t) {
          toImport.push(f);
          continue;
        }
        f.taskId = t.id;
        await record(f);
        if (t.overlap < f.required) {
          const people = await repos.labelingAnnotations.peopleOnTask(pool, t.id);
          await ls.patchTask(t.id, { overlap: f.required, is_labeled: people >= f.required });
        }
        reused++;
      }
      for (let i = 0; i < toImport.length; i += IMPORT_BATCH) {
        const batch = toImport.slice(i, i + IMPORT_BATCH);
        const ids = await ls.importTasks(
          projectId,
          batch.map((f) => taskOf(f, { workflowId: wf, label: input.label, bucket: config.S3_BUCKET, modelVersion })),
        );
        for (const [j, f] of batch.entries()) {
          f.taskId = ids[j]!;
          await record(f);
        }
        created += batch.length;
        heartbeat({ imported: created, of: toImport.length });
      }
      // Validation frames need several people: the task's overlap says so to Label Studio's queue.
      for (const f of toImport) {
        if (f.required > 1) await ls.patchTask(f.taskId!, { overlap: f.required });
      }

      await repos.labelingRuns.recordWaiting(pool, {
        workflowId: wf,
        label: input.label,
        projectId,
        deadline: input.deadline,
        onDeadline: input.options.onDeadline,
        tasks: frames.length,
      });
      const plan: LabelingPlan = {
        workflowId: wf,
        label: input.label,
        projectId,
        projectUrl,
        choices,
        frames,
        inherited,
        model: predictions ? { name: predictions.model.name, version: predictions.model.version } : null,
      };
      await store.putJson(labelingPlanKey(wf), plan);
      logger.info({ workflowId: wf, projectId, tasks: frames.length, created, reused, inherited: inherited.length }, 'frames sent to people');
      return {
        projectId,
        projectUrl,
        tasks: frames.length,
        created,
        reused,
        inherited: inherited.length,
        validationTasks: frames.filter((f) => f.split === 'validation').length,
        deadline: input.deadline,
        model: plan.model,
      };
    },

    /**
     * Bring a run's mirror of Label Studio up to date and count: the annotations named
     * (fetched one by one: created or updated), the deleted ones (removed by id), or,
     * with `full`, every task of the run (new, changed and vanished annotations alike:
     * what finds events whose webhook was lost). Idempotent: keyed by annotation id.
     *
     * @returns the run's counts (tasks, done, labelled, agreement).
     * @throws TransientError when Label Studio is unreachable (the workflow carries on waiting and tries again).
     */
    async syncLabeling(input: {
      workflowId: string;
      annotationIds: number[];
      deletedAnnotationIds: number[];
      full: boolean;
    }): Promise<LabelingCounts & { syncedAt: string }> {
      const ls = labelStudioOf(deps);
      await removeAnnotations(pool, input.deletedAnnotationIds);
      if (input.full) {
        const r = await syncRun(ls, input.workflowId);
        if (r.syncError) throw new TransientError(`reconciliation with Label Studio failed: ${r.syncError}`);
      } else {
        await applyLabelingEvent(deps, ls, { annotationIds: input.annotationIds, deletedAnnotationIds: [] });
        await adjudicate(ls, input.workflowId);
      }
      const { resolutions: _r, ...counts } = countsOf(await runVotes(pool, input.workflowId));
      return { ...counts, syncedAt: new Date().toISOString() };
    },

    /**
     * The label step's end in `human` mode: a last full sync (when Label Studio answers),
     * then each frame's label: people's (a strict majority of the people who labelled
     * it), else, when the run stopped waiting before people were done, its weak label
     * marked `weak` with `fallback` (also written to `frame_labels`, with its provenance:
     * exclusion evidence when the guess was `other` on evidence). Frames people
     * disagreed on (no majority, even after a third person) or skipped are left out of
     * the dataset and listed in `excluded`. Inherited human labels are kept. The summary
     * has the agreement of the first two people on validation frames (Cohen's kappa).
     * Checkpointed like every step (`runs/<run>/label/manifest.json`).
     */
    async finishLabeling(input: { workflowId: string; finishedBy: 'complete' | 'deadline' | 'early' }): Promise<StepResult<LabelSummary>> {
      const wf = input.workflowId;
      return runStep(deps, wf, 'label', async () => {
        const plan = await store.getJson<LabelingPlan>(labelingPlanKey(wf));
        if (!plan) throw new MissingArtifactError(store.uri(labelingPlanKey(wf)), 'labelling plan (written by prepareLabeling)');
        let ls: LabelStudioClient | undefined = labelStudioOf(deps);
        if (!(await ls.healthy())) {
          logger.warn({ workflowId: wf, url: config.LABEL_STUDIO_URL }, 'Label Studio does not answer: finishing from the mirror in Postgres');
          ls = undefined;
        }
        const { resolutions, validation, tasks: taskCount, done: tasksDone } = await syncRun(ls, wf);
        const votes = await runVotes(pool, wf);
        const frames: LabelledFrame[] = [...plan.inherited];
        const excluded: ExcludedFrame[] = [];
        let human = plan.inherited.length;
        let weakFallback = 0;
        for (const f of plan.frames) {
          const t = votes.get(f.taskId!);
          const r = resolutions.get(f.taskId!) ?? { status: 'pending' as const, people: 0, partial: null };
          const people = t ? [...new Set(t.votes.filter((v) => v.label !== null).map((v) => v.annotator))] : [];
          const ids = t ? t.votes.filter((v) => v.label !== null).map((v) => v.annotationId) : [];
          const base = { key: f.key, videoId: f.videoId, split: f.split };
          const agreed = r.status === 'agreed' ? r.label : r.status === 'pending' && r.partial && 'label' in r.partial ? r.partial.label : undefined;
          if (agreed !== undefined) {
            frames.push({ ...base, label: agreed, source: 'human', confidence: 1, annotators: people, annotationIds: ids });
            human++;
          } else if (r.status === 'disagreed' || (r.status === 'pending' && r.partial && 'disagreed' in r.partial)) {
            excluded.push({ ...base, reason: 'disagreement', labels: r.status === 'disagreed' ? r.labels : (r.partial as { disagreed: string[] }).disagreed });
          } else if (r.status === 'skipped') {
            excluded.push({ ...base, reason: 'skipped', labels: [] });
          } else {
            const ev = f.evidence
              ? {
                  inheritedFrom: f.evidence.frameKey,
                  inheritedRun: f.evidence.workflowId,
                  evidence: { label: f.evidence.label, runLabel: f.evidence.runLabel, source: f.evidence.source },
                }
              : {};
            frames.push({ ...base, label: f.weakLabel, source: 'weak', confidence: f.weakConfidence, fallback: true, ...ev });
            weakFallback++;
          }
        }
        for (const f of frames.filter((x) => x.fallback)) await upsertRunLabel(pool, wf, f);
        const perLabel: Record<string, number> = {};
        for (const f of frames) perLabel[f.label] = (perLabel[f.label] ?? 0) + 1;
        const summary: LabelSummary = {
          source: 'human',
          mode: 'human',
          frames: frames.length,
          perLabel,
          sent: plan.frames.length,
          inherited: plan.inherited.length,
          evidence: plan.frames.filter((f) => f.evidence).length,
          human,
          weakFallback,
          excluded: excluded.length,
          pairs: validation.pairs,
          agreement: round4(validation.agreement),
          kappa: round4(validation.kappa),
          disagreements: validation.disagreements,
          finishedBy: input.finishedBy,
          projectUrl: plan.projectUrl,
        };
        await repos.labelingRuns.recordFinished(pool, wf, { ...summary, tasks: taskCount, tasksDone });
        return {
          summary,
          extra: {
            labels: orderLabels(
              plan.label,
              frames.map((f) => f.label),
            ),
            frames,
            excluded,
            labelStudio: { projectId: plan.projectId, projectUrl: plan.projectUrl },
          },
        };
      });
    },

    /** Mark a run's wait as over without a label step (the deadline passed under the `fail` policy). */
    async closeLabeling(input: { workflowId: string; status: 'failed'; reason: string }): Promise<void> {
      await repos.labelingRuns.recordClosed(pool, input.workflowId, input.status, { reason: input.reason });
    },
  };
}
