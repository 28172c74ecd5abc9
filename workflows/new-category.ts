import { ContinueAsNew, continueAsNew, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { VideoActivities } from '../activities';
import { DatasetError, NewCategoryInput, runPrefix, SHORT, type ContinueState, type NewCategoryRequest, type NewCategoryResult } from '../contracts';
import { parseInput } from './parse-input';
import { embedAndDedupe, extractStep, finishFailedRun, labelStep, trackRun, trainAndPublish, writeReport } from './pipeline';

/**
 * The new-category workflow: from a label to a labelled, deduplicated dataset and a
 * trained, distilled, evaluated and registered classifier.
 *
 * Input is validated first; a bad field fails the run at once with a non-retryable
 * `InvalidInputError` naming the field. Every step is an activity that checkpoints its
 * manifest under `runs/<workflowId>/<step>/` and returns it when it finds it, so a
 * reset or retried run resumes where it was. Extraction fans out to one child
 * workflow per video (bounded by `extractConcurrency`); a video that fails is reported
 * in the result and the run goes on. When the history grows large during the fan-out
 * the run continues as new, carrying only a cursor and the failures.
 *
 * The label step follows `labeling.mode`: `human` (the default) sends the unique frames
 * to people in Label Studio and waits for them in the child `<workflowId>/label`, up to
 * its deadline; `weak` copies the search's labels and waits for nobody.
 *
 * Training, distillation and evaluation run on the GPU task queue. The run ends by
 * writing its HTML report (`runs/<id>/report.html`, best effort, also when it failed).
 * The steps it shares with the retrain are in `./pipeline.ts`.
 */
export async function newCategoryWorkflow(request: NewCategoryRequest, state?: ContinueState): Promise<NewCategoryResult> {
  const input = parseInput(NewCategoryInput, request, 'new-category');
  const { workflowId } = workflowInfo();
  const cpu = proxyActivities<VideoActivities>(SHORT);
  const run = trackRun(input.label, state);

  try {
    run.stage('search');
    await cpu.startRun({ workflowId, kind: 'new-category', label: input.label, input });
    const search = await cpu.searchVideos({
      workflowId,
      label: input.label,
      maxPositiveVideos: input.maxPositiveVideos,
      maxNegativeVideos: input.maxNegativeVideos,
      seed: input.seed,
    });
    run.done('search', search);

    run.stage('extract');
    const ids = search.videoIds;
    const { extract, failures } = await extractStep(run, {
      workflowId,
      videoIds: ids,
      input,
      state,
      continueAsNew: (s) => continueAsNew<typeof newCategoryWorkflow>(request, s),
    });
    if (extract.frames === 0) {
      throw new DatasetError(
        `no usable frame in any of the ${ids.length} videos for "${input.label}" (failures: ${failures.map((f) => f.videoId).join(', ') || 'none'})`,
      );
    }

    await embedAndDedupe(run, workflowId, input);
    // People label in Label Studio (a child waits for them), or weak labels: `labeling.mode`.
    await labelStep(run, workflowId, input);
    run.stage('dataset');
    const dataset = await cpu.buildDataset({ workflowId, validationFraction: input.validationFraction, seed: input.seed });
    run.done('dataset', dataset);

    const publish = await trainAndPublish(run, workflowId, input);

    const result: NewCategoryResult = {
      workflowId,
      label: input.label,
      runPrefix: runPrefix(workflowId),
      steps: run.steps,
      failures,
      dataset: {
        name: dataset.name,
        version: dataset.version,
        datasetKey: dataset.datasetKey,
        counts: dataset.counts,
        warnings: dataset.warnings,
      },
      models: publish.models,
      evaluation: publish.evaluation,
    };
    run.stage('done');
    await cpu.finishRun({ workflowId, status: 'completed', result });
    await writeReport(workflowId);
    return result;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    await finishFailedRun(run, workflowId, err);
    await writeReport(workflowId);
    throw err;
  }
}
