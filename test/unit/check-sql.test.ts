/** The one-owner-per-table check of `npm run lint` (infra/check-sql.ts): what it calls a pg query. */
import * as path from 'node:path';
import * as ts from 'typescript';
import { allowed, sqlCallsIn } from '../../infra/check-sql';

const ROOT = path.resolve(__dirname, '../..');

/** A program of one in-memory file (placed in `activities/`, so that `pg` and `@temporalio/client` resolve). */
function programOf(source: string): { program: ts.Program; file: ts.SourceFile } {
  const fileName = path.join(ROOT, 'activities/__fake__.ts');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) =>
    name === fileName ? ts.createSourceFile(name, source, lang, true) : getSourceFile.call(host, name, lang, ...rest);
  host.fileExists = (name) => name === fileName || fileExists.call(host, name);
  host.readFile = (name) => (name === fileName ? source : readFile.call(host, name));
  const program = ts.createProgram({ rootNames: [fileName], options, host });
  return { program, file: program.getSourceFile(fileName)! };
}

test('flags pg Pool, PoolClient, Client and QueryResult wrappers; never a Temporal workflow query', () => {
  const { program, file } = programOf(`
import { Pool, type PoolClient, type Client as PgClient, type QueryResult } from 'pg';
import { Client, type WorkflowHandle } from '@temporalio/client';
import { defineQuery } from '@temporalio/common';

const progress = defineQuery<number>('progress');
interface Db { query(sql: string): Promise<QueryResult> }

export async function f(pool: Pool, c: PoolClient, pg: PgClient, db: Db, picked: Pick<Pool, 'query'>, handle: WorkflowHandle, temporal: Client) {
  await pool.query('SELECT 1');
  await c.query<{ n: number }>('SELECT 2');
  await pg.query('SELECT 3');
  await db.query('SELECT 4');
  await picked.query('SELECT 5');
  const q = pool['query'];
  await handle.query(progress);
  await temporal.workflow.getHandle('w').query(progress);
  const other = { query: (s: string) => s };
  other.query('not sql');
  return q;
}
`);
  const found = sqlCallsIn(program, file, ROOT);
  expect(found.map((c) => [c.file, c.line])).toEqual([
    ['activities/__fake__.ts', 10],
    ['activities/__fake__.ts', 11],
    ['activities/__fake__.ts', 12],
    ['activities/__fake__.ts', 13],
    ['activities/__fake__.ts', 14],
    ['activities/__fake__.ts', 15],
  ]);
  expect(found[0]!.text).toBe("pool.query('SELECT 1')");
});

test('allowed: the repositories, the pool set-up, the migration runner and the tests', () => {
  expect(allowed('lib/repositories/runs.ts')).toBe(true);
  expect(allowed('lib/db.ts')).toBe(true);
  expect(allowed('infra/migrate.ts')).toBe(true);
  expect(allowed('test/integration/ingest.test.ts')).toBe(true);
  expect(allowed('lib/runs.ts')).toBe(false);
  expect(allowed('lib/db.ts.bak')).toBe(false);
  expect(allowed('activities/catalog/ingest.ts')).toBe(false);
  expect(allowed('workers/metrics.ts')).toBe(false);
});
