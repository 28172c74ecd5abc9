/**
 * Run the `extractVideo` activity in a process of its own, as a worker would, and
 * report what it cost: `tsx test/helpers/extract-child.ts '<{"videoId", "options"}>'`.
 *
 * Prints one JSON line: `{ summary, peakRssBytes, maxTmpBytes }`, where peakRssBytes is
 * the process's high-water resident set (VmHWM) and maxTmpBytes the most bytes seen
 * under $TMPDIR (sampled every 50 ms).
 */
import { promises as fs, readdirSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createFrameActivities } from '../../activities/frames/activities';
import { createActivityDeps } from '../../lib/deps';

function bytesUnder(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    try {
      total += e.isDirectory() ? bytesUnder(p) : statSync(p).size;
    } catch {
      // Removed while we looked.
    }
  }
  return total;
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}');
  const deps = createActivityDeps('extract-child', { ...process.env, REELSET_LOG_LEVEL: 'warn' });
  const tmp = os.tmpdir();
  let maxTmpBytes = 0;
  const timer = setInterval(() => (maxTmpBytes = Math.max(maxTmpBytes, bytesUnder(tmp))), 50);
  try {
    const summary = await new MockActivityEnvironment().run(createFrameActivities(deps).extractVideo, input);
    const status = await fs.readFile('/proc/self/status', 'utf8');
    const peakRssBytes = Number(/VmHWM:\s*(\d+)\s*kB/.exec(status)![1]) * 1024;
    process.stdout.write(`${JSON.stringify({ summary, peakRssBytes, maxTmpBytes })}\n`);
  } finally {
    clearInterval(timer);
    await deps.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
