/**
 * Workflow files run in Temporal's deterministic sandbox: they may import only the
 * workflow SDK, zod (pure) and each other, and activities as types only. This stands in
 * for the ESLint override that forbids Node built-ins in workflow code.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

const DIR = path.resolve(__dirname, '../../workflows');
const ALLOWED_VALUE_IMPORTS = [/^@temporalio\/workflow$/, /^zod$/, /^\.\/[\w-]+$/];

test('workflow files import nothing non-deterministic as a value', async () => {
  const files = (await fs.readdir(DIR)).filter((f) => f.endsWith('.ts'));
  expect(files.length).toBeGreaterThan(3);
  const offending: string[] = [];
  for (const f of files) {
    const src = await fs.readFile(path.join(DIR, f), 'utf8');
    for (const m of src.matchAll(/^\s*import\s+(type\s+)?[^;]*?from\s+['"]([^'"]+)['"]/gms)) {
      const [, typeOnly, spec] = m;
      if (typeOnly) continue;
      if (!ALLOWED_VALUE_IMPORTS.some((re) => re.test(spec!))) offending.push(`${f}: ${spec}`);
    }
    if (/\brequire\(|process\.env|Math\.random|new Date\(\)/.test(src)) offending.push(`${f}: uses require/process.env/Math.random/new Date()`);
  }
  expect(offending).toEqual([]);
});
