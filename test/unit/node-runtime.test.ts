/**
 * Node.js 22 everywhere: package.json's engines, the tests themselves, the scripts
 * (infra/node.sh, through infra/env.sh's PATH) and the CLI, which runs itself again on
 * infra/install.sh's Node 22 when an older node starts it (no AWS SDK
 * NodeVersionSupportWarning).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const major = (v: string) => Number(v.trim().replace(/^v/, '').split('.')[0]);

test('package.json asks for Node 22 and the tests run on it', () => {
  expect((JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node).toBe('>=22');
  expect(major(process.versions.node)).toBeGreaterThanOrEqual(22);
});

test('the scripts run node through infra/env.sh: Node 22', () => {
  const v = execFileSync('bash', [path.join(ROOT, 'infra/node.sh'), '-p', 'process.versions.node'], { cwd: ROOT, encoding: 'utf8' });
  expect(major(v)).toBeGreaterThanOrEqual(22);
  const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  for (const [name, cmd] of Object.entries(scripts)) expect([name, /^node\b|^npx\b|^tsx\b/.test(cmd)]).toEqual([name, false]);
});

const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p) && major(execFileSync(p, ['--version'], { encoding: 'utf8' })) < 22);

(oldNode ? test : test.skip)(`the CLI started by an older node (${oldNode ?? 'none here'}) runs on Node 22: no NodeVersionSupportWarning`, () => {
  // `models list` builds the S3 client, which is where the AWS SDK warns.
  const r = spawnSync(oldNode!, [path.join(ROOT, 'cli/bin.js'), 'models', 'list'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NODE_NO_WARNINGS: '' },
  });
  expect(r.stderr).not.toContain('NodeVersionSupportWarning');
  expect(r.status).toBe(0);
});
