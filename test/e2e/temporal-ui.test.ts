/**
 * Start a run from the Temporal Web UI in a real browser, as people do: headless Debian
 * Chromium driven by playwright-core fills the UI's Start Workflow form with
 * `newCategoryWorkflow` and a small input (a tiny catalog registered by the test), the
 * real workers run it, the page shows it Completed, and the Queries tab answers the
 * `progress` query. Needs the dev server's UI (`infra/services.sh start`) and
 * `/usr/bin/chromium` (`infra/install.sh`).
 *
 * The UI's quirks (checked by hand against this version of the UI; docs/operations.md): the input
 * cannot be prefilled from the URL; when the input editor loses focus it reflows and the
 * Start button moves, so a click that blurs it is lost without a request: click the
 * heading first, then Start, and fail when the POST never happens.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { NewCategoryRequest, NewCategoryResult } from '../../contracts';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { tinyCatalog, type TinyCatalog } from '../helpers/tiny-catalog';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(600_000);

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const suffix = uniqueSuffix();
const LABEL = `ui-${suffix}`.slice(0, 40);
const queues = { REELSET_VIDEO_TASK_QUEUE: `ui-video-${suffix}`, REELSET_GPU_TASK_QUEUE: `ui-gpu-${suffix}` };
let svc: Services;
let connection: Connection;
let client: Client;
let browser: Browser | undefined;
let page: Page | undefined;
let dir: string;
let catalog: TinyCatalog | undefined;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  svc = await requireServices();
  const ui = svc.config.TEMPORAL_UI_URL;
  const up = await fetch(ui, { signal: AbortSignal.timeout(10_000) }).then(
    (r) => r.ok,
    () => false,
  );
  if (!up) throw new Error(`Temporal Web UI not reachable at ${ui}; start it with \`bash infra/services.sh start\``);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; install it with \`bash infra/install.sh\` (Debian package chromium)`);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-ui-'));
  catalog = await tinyCatalog(svc, LABEL, dir);
  workers.push(
    await startWorker('video', { ...queues, REELSET_VIDEO_METRICS_PORT: '0' }),
    await startWorker('gpu', { ...queues, REELSET_GPU_METRICS_PORT: '0' }),
  );
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
}, 300_000);

afterAll(async () => {
  if (page) await page.screenshot({ path: path.join(svc.config.REELSET_LOG_DIR, 'temporal-ui-test.png'), fullPage: true }).catch(() => undefined);
  await browser?.close();
  for (const w of workers) await w.kill();
  await catalog?.remove();
  await connection?.close();
  await svc?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('start newCategoryWorkflow from the Start Workflow form, watch it complete, read the progress query', async () => {
  const ui = svc.config.TEMPORAL_UI_URL;
  const ns = svc.config.TEMPORAL_NAMESPACE;
  const workflowId = `${LABEL}-from-ui`;
  const input: NewCategoryRequest = {
    label: LABEL,
    maxNegativeVideos: 2,
    extract: { mode: 'count', count: 4 },
    validationFraction: 0.34,
    teacher: { epochs: 2, cutmixPerFrame: 0 },
    student: { epochsFactor: 1 },
    gpuTaskQueue: queues.REELSET_GPU_TASK_QUEUE,
    // Weak labels: the run completes unattended (human labelling would wait for people).
    labeling: { mode: 'weak' },
  };
  page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } });
  const q = new URLSearchParams({ workflowId, taskQueue: queues.REELSET_VIDEO_TASK_QUEUE, workflowType: 'newCategoryWorkflow' });
  await page.goto(`${ui}/namespaces/${ns}/workflows/start-workflow?${q}`);
  await page.getByTestId('start-workflow').waitFor({ timeout: 60_000 });
  // The query string prefilled id, task queue and type.
  await expect(page.getByTestId('workflowId').locator('input').or(page.locator('input#workflowId')).first().inputValue()).resolves.toBe(workflowId);
  await page.getByRole('textbox', { name: 'Data' }).fill(JSON.stringify(input));
  // A worker polls the queue: the form says so.
  await page.getByText('Task Queue is Active').waitFor({ timeout: 60_000 });
  // Blur the editor first (it reflows and moves the button), then start.
  await page.getByTestId('start-workflow').click();
  const posted = page.waitForResponse(
    (r) => r.request().method() === 'POST' && r.url().includes(`/api/v1/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}`),
    { timeout: 30_000 },
  );
  await page.getByTestId('start-workflow-button').first().click();
  const response = await posted;
  expect(response.status()).toBe(200);
  const { runId } = (await response.json()) as { runId: string };
  expect(runId).toEqual(expect.any(String));

  // The run the UI started is the real one, with the form's input.
  const handle = client.workflow.getHandle(workflowId, runId);
  const desc = await handle.describe();
  expect(desc.type).toBe('newCategoryWorkflow');

  // Watch it on its page until the header says Completed (the header is a snapshot: reload).
  await page.goto(`${ui}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}/${runId}/history`);
  const status = page.getByTestId('execution-status').first();
  const deadline = Date.now() + 300_000;
  for (;;) {
    await status.waitFor({ timeout: 60_000 });
    const text = (await status.innerText()).trim().toLowerCase();
    if (text === 'completed') break;
    if (['failed', 'terminated', 'timed out', 'canceled'].includes(text))
      throw new Error(`the run ended ${text}: ${JSON.stringify(await handle.result().catch((e: Error) => e.message))}`);
    if (Date.now() > deadline) throw new Error(`still ${text} after 5 minutes`);
    await page.waitForTimeout(3000);
    await page.reload();
  }
  const result = (await handle.result()) as NewCategoryResult;
  expect(result.label).toBe(LABEL);
  expect(result.models).toHaveLength(2);

  // The Queries tab: the progress query says where the run is (done, every step).
  await page.getByTestId('queries-tab').click();
  await page.getByTestId('query-select-button').click();
  await page.getByRole('option', { name: 'progress' }).click();
  await page.getByRole('button', { name: 'Run Query' }).click();
  const answer = page.getByText(/"stage":\s*"done"/).first();
  await answer.waitFor({ timeout: 60_000 });
  const body = await page.locator('body').innerText();
  expect(body).toContain('"stepsDone"');
  expect(body).toContain('"publish"');
});
