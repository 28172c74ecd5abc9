/**
 * No import cycle at all, type-only imports included: eslint's `import-x/no-cycle` skips
 * `import type`, so this check reads every import and export of the project's TypeScript
 * files (`ts.preProcessFile`, the compiler's own import scanner), resolves the relative
 * ones, and reports each strongly connected component of more than one file (Tarjan 1972).
 * Part of `npm run lint`.
 *
 * Usage: `npx tsx infra/check-cycles.ts` (exit 1 and the cycles printed when there are any).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
const SKIP = new Set(['node_modules', '.data', '.git', 'dist']);

/** Every `.ts` file under `dir` (not declaration files), relative to the root. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (SKIP.has(name)) return [];
    if (statSync(p).isDirectory()) return sources(p);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path.relative(ROOT, p)] : [];
  });
}

/** The project files a file imports (relative specifiers only), type-only imports included. */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(path.join(ROOT, file), 'utf8'), true, true);
  return info.importedFiles.flatMap(({ fileName }) => {
    if (!fileName.startsWith('.')) return [];
    const base = path.join(path.dirname(file), fileName);
    const hit = [`${base}.ts`, path.join(base, 'index.ts'), base].find((c) => c.endsWith('.ts') && existsSync(path.join(ROOT, c)));
    return hit ? [path.normalize(hit)] : [];
  });
}

/**
 * Strongly connected components of more than one node (and self-imports) of a directed graph.
 * @returns each cycle's files, sorted.
 */
export function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

if (require.main === module) {
  const files = sources(ROOT);
  const found = cycles(new Map(files.map((f) => [f, importsOf(f)])));
  for (const c of found) console.error(`import cycle (${c.length} files, type-only imports included): ${c.join(' -> ')}`);
  console.log(`check-cycles: ${files.length} files, ${found.length} import cycle${found.length === 1 ? '' : 's'}`);
  process.exitCode = found.length ? 1 : 0;
}
