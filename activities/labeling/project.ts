/**
 * The Label Studio project of a label: created once, reused by every run of the label,
 * kept in step with the taxonomy (choices), the image storage and the webhook.
 */
import type { Pool } from 'pg';
import { NEGATIVE_LABEL } from '../../contracts';
import type { Config } from '../../lib/config';
import { withTransaction } from '../../lib/db';
import type { LabelStudioClient } from '../../lib/label-studio';
import type { Logger } from '../../lib/logger';
import { repos } from '../../lib/repositories';

/** Header Label Studio sends with every webhook call; the gateway checks it. */
export const WEBHOOK_SECRET_HEADER = 'X-Reelset-Webhook-Secret';
/** The events the gateway listens to. */
export const WEBHOOK_ACTIONS = ['ANNOTATION_CREATED', 'ANNOTATION_UPDATED', 'ANNOTATIONS_DELETED'];
/** Name of the choices control in the label configuration (annotation results carry it as `from_name`). */
export const CHOICES_NAME = 'label';
/** Name of the image object (`to_name`). */
export const IMAGE_NAME = 'image';

/** What the taxonomy says of a label: its choices for people, and words for the instructions. */
export interface LabelTaxonomy {
  label: string;
  /** The label, its children (when it has some), `other`: in this order. */
  choices: string[];
  synonyms: string[];
  /** Root first, e.g. `['person', 'face']`. */
  path: string[];
  children: Array<{ name: string; synonyms: string[] }>;
}

/** The choices and words of a label from the `labels` table (a label missing there gets just itself and `other`). */
export async function labelTaxonomy(pool: Pool, label: string): Promise<LabelTaxonomy> {
  const synonyms = await repos.labels.synonymsOf(pool, label);
  const children = await repos.labels.childrenOf(pool, label);
  const path = await repos.labels.pathFromRoot(pool, label);
  const kids = children.filter((c) => c.name !== NEGATIVE_LABEL && c.name !== label);
  return {
    label,
    choices: [...new Set([label, ...kids.map((c) => c.name), NEGATIVE_LABEL])],
    synonyms: synonyms ?? [],
    path: path.length ? path : [label],
    children: kids,
  };
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * Label Studio's label configuration: the frame, a hint line from the task data (search
 * and model say...), and one required single choice among `choices` (hotkeys 1..9).
 */
export function labelConfigXml(choices: readonly string[]): string {
  const options = choices.map((c, i) => `    <Choice value="${xml(c)}"${i < 9 ? ` hotkey="${i + 1}"` : ''}/>`).join('\n');
  return [
    '<View>',
    '  <Header value="$hint" size="6"/>',
    `  <Image name="${IMAGE_NAME}" value="$image" maxWidth="800px"/>`,
    `  <Choices name="${CHOICES_NAME}" toName="${IMAGE_NAME}" choice="single-radio" showInline="true" required="true">`,
    options,
    '  </Choices>',
    '</View>',
  ].join('\n');
}

/** The instructions people see before labelling (HTML): what the label means and when to pick each choice. */
export function instructionsHtml(t: LabelTaxonomy): string {
  const syn = t.synonyms.length ? ` (also called ${t.synonyms.map(xml).join(', ')})` : '';
  const lines = [
    `<p>Each image is one frame of a video, picked by reelset so that you see each distinct view once. Pick the one choice that fits the frame best.</p>`,
    `<ul>`,
    `<li><b>${xml(t.label)}</b>${syn}: the frame shows a ${xml(t.label)} (taxonomy: ${t.path.map(xml).join(' &gt; ')}).</li>`,
    ...t.children.map(
      (c) =>
        `<li><b>${xml(c.name)}</b>${c.synonyms.length ? ` (${c.synonyms.map(xml).join(', ')})` : ''}: a kind of ${xml(t.label)}; pick it rather than ${xml(t.label)} when it fits.</li>`,
    ),
    `<li><b>${NEGATIVE_LABEL}</b>: no ${xml(t.label)} in the frame.</li>`,
    `</ul>`,
    `<p>The pre-selected choice is a guess (the video's catalog label, or the current model's prediction with its score): check it, change it when it is wrong. Skip a frame you cannot judge (too dark, too blurred).</p>`,
  ];
  return lines.join('\n');
}

/** The title of a label's project. */
export function projectTitle(label: string): string {
  return `reelset: ${label}`;
}

/**
 * Make sure the label's project exists and is set up: label configuration and
 * instructions from the taxonomy (choices are only ever added, so earlier annotations
 * stay valid), one annotation per task unless a task says otherwise (validation frames
 * do), an S3 source storage on our bucket with presigning off (Label Studio streams
 * frames to the browser itself: the browser never sees an S3 credential or URL), and
 * the webhook to the gateway with the shared secret header.
 *
 * Concurrent runs of a label are serialised by an advisory lock, so one project is made.
 * An existing project of the same title is adopted (a crash after creating it).
 */
export async function ensureProject(
  deps: { pool: Pool; config: Config; logger: Logger },
  ls: LabelStudioClient,
  label: string,
): Promise<{ projectId: number; projectUrl: string; choices: string[] }> {
  const { pool, config } = deps;
  const taxonomy = await labelTaxonomy(pool, label);
  return withTransaction(pool, async (c) => {
    await repos.labelingProjects.lockLabel(c, label);
    const row = await repos.labelingProjects.ofLabel(c, label);
    let project = row ? await ls.getProject(row.projectId) : undefined;
    if (!project) project = (await ls.findProjects(projectTitle(label)))[0];
    const choices = [...new Set([...taxonomy.choices, ...(row?.choices ?? [])])];
    // `other` last, the label first.
    choices.sort((a, b) => rank(a, label) - rank(b, label) || a.localeCompare(b));
    const settings = {
      title: projectTitle(label),
      label_config: labelConfigXml(choices),
      expert_instruction: instructionsHtml(taxonomy),
      show_instruction: true,
      show_skip_button: true,
      enable_empty_annotation: false,
      maximum_annotations: 1,
    };
    if (!project) {
      project = await ls.createProject({ ...settings, description: `Frames of "${label}" videos sent by reelset runs. One choice per frame.` });
      deps.logger.info({ label, projectId: project.id }, 'label studio project created');
    } else if (project.label_config !== settings.label_config || project.expert_instruction !== settings.expert_instruction) {
      // maximum_annotations is left alone on an existing project: changing it rewrites every task's overlap.
      const { maximum_annotations: _keep, ...rest } = settings;
      project = await ls.updateProject(project.id, rest);
    }
    const projectId = project.id;

    const storages = await ls.listS3Storages(projectId);
    const storage = {
      project: projectId,
      title: 'reelset frames',
      bucket: config.S3_BUCKET,
      prefix: 'frames/',
      use_blob_urls: true,
      presign: false,
      s3_endpoint: config.LABEL_STUDIO_S3_ENDPOINT,
      region_name: config.S3_REGION,
      aws_access_key_id: config.LABEL_STUDIO_S3_ACCESS_KEY_ID,
      aws_secret_access_key: config.LABEL_STUDIO_S3_SECRET_ACCESS_KEY,
    };
    const mine = storages.find((s) => s.bucket === config.S3_BUCKET);
    if (!mine) await ls.createS3Storage(storage);
    else if ((mine.s3_endpoint ?? '') !== config.LABEL_STUDIO_S3_ENDPOINT || mine.presign) await ls.updateS3Storage(mine.id, storage);

    const hooks = await ls.listWebhooks(projectId);
    const hook = {
      project: projectId,
      url: config.LABEL_STUDIO_WEBHOOK_URL,
      send_payload: true,
      send_for_all_actions: false,
      actions: WEBHOOK_ACTIONS,
      headers: { [WEBHOOK_SECRET_HEADER]: config.LABEL_STUDIO_WEBHOOK_SECRET },
    };
    const existing = hooks.find((h) => h.url === hook.url);
    if (!existing) await ls.createWebhook(hook);
    else if (
      !existing.is_active ||
      existing.headers?.[WEBHOOK_SECRET_HEADER] !== config.LABEL_STUDIO_WEBHOOK_SECRET ||
      [...existing.actions].sort().join() !== [...WEBHOOK_ACTIONS].sort().join() ||
      !existing.send_payload
    ) {
      await ls.updateWebhook(existing.id, { ...hook, is_active: true });
    }

    const projectUrl = ls.projectUrl(projectId);
    await repos.labelingProjects.upsert(c, { label, projectId, url: projectUrl, choices });
    return { projectId, projectUrl, choices };
  });
}

function rank(choice: string, label: string): number {
  return choice === label ? 0 : choice === NEGATIVE_LABEL ? 2 : 1;
}
