/**
 * One owner per Postgres table: SQL is written only in `lib/repositories/` (one module per
 * table, docs/architecture.md). This check builds the project with the TypeScript compiler
 * (tsconfig.json) and asks its type checker, for every `x.query` (called or not, `x['query']`
 * too), what `query` is: it is a database query when the property is declared by pg's
 * typings (`Pool`, `PoolClient`, `Client`, `ClientBase`, also through `Pick<Pool, 'query'>`
 * and the like), or when the call returns pg's `QueryResult` (a hand-written wrapper type
 * with a `query` method). A Temporal `handle.query(...)` (a workflow query, not SQL) is
 * declared by @temporalio/client and returns no `QueryResult`, so it is never flagged.
 *
 * Allowed outside the repositories: `lib/db.ts` (the pool, transactions, the `SELECT 1`
 * reachability check) and `infra/migrate.ts` (the migration runner); tests under `test/`
 * check the database on their own and may keep raw SQL.
 *
 * Limits: a query that never names `query` (pg's `Cursor`, `client.connection` internals,
 * `QueryStream`) or that goes through an `any`-typed value is not seen; the project uses none.
 * Part of `npm run lint`.
 *
 * Usage: `npx tsx infra/check-sql.ts` (exit 1, each call printed as file:line, when there are any).
 */
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');

/** Files and folders (relative to the root, `/`-separated) where pg queries may be written. */
export const ALLOWED = ['lib/repositories/', 'lib/db.ts', 'infra/migrate.ts', 'test/'];

/** A pg query call found where it does not belong. */
export interface SqlCall {
  /** Relative to the root, `/`-separated. */
  file: string;
  /** 1-based. */
  line: number;
  /** The call's text, first line only. */
  text: string;
}

/** Whether a declaration comes from pg's typings (`@types/pg`, or pg's own if it ships them). */
function isPgDeclaration(decl: ts.Declaration): boolean {
  const f = decl.getSourceFile().fileName.replace(/\\/g, '/');
  return /\/node_modules\/(@types\/pg|pg|pg-pool)\//.test(f);
}

/** Whether `type` is (a union with) pg's `QueryResult`, or a promise of one. */
function isPgResult(checker: ts.TypeChecker, type: ts.Type, depth = 0): boolean {
  if (depth > 3) return false;
  if (type.isUnion()) return type.types.some((t) => isPgResult(checker, t, depth + 1));
  const sym = type.getSymbol() ?? type.aliasSymbol;
  if (sym?.getName() === 'Promise') {
    const [arg] = checker.getTypeArguments(type as ts.TypeReference);
    return arg ? isPgResult(checker, arg, depth + 1) : false;
  }
  return !!sym && /^(QueryResult|QueryArrayResult)$/.test(sym.getName()) && (sym.declarations ?? []).some(isPgDeclaration);
}

/**
 * The pg query calls (and other uses of a pg `query` method) in one source file.
 *
 * @param file a file of `program`.
 * @returns line numbers are 1-based; `file` is the file's name relative to `root`.
 */
export function sqlCallsIn(program: ts.Program, file: ts.SourceFile, root = ROOT): SqlCall[] {
  const checker = program.getTypeChecker();
  const out: SqlCall[] = [];
  const visit = (node: ts.Node) => {
    let name: ts.Node | undefined;
    if (ts.isPropertyAccessExpression(node) && node.name.text === 'query') name = node.name;
    else if (ts.isElementAccessExpression(node) && ts.isStringLiteralLike(node.argumentExpression) && node.argumentExpression.text === 'query')
      name = node.argumentExpression;
    if (name) {
      const sym = checker.getSymbolAtLocation(name);
      const decls = sym ? ((sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym).declarations ?? []) : [];
      let pg = decls.some(isPgDeclaration);
      if (!pg && ts.isCallExpression(node.parent) && node.parent.expression === node) {
        const sig = checker.getResolvedSignature(node.parent);
        pg = !!sig && isPgResult(checker, checker.getReturnTypeOfSignature(sig));
      }
      if (pg) {
        const { line } = file.getLineAndCharacterOfPosition(node.getStart(file));
        const call = ts.isCallExpression(node.parent) ? node.parent : node;
        out.push({ file: path.relative(root, file.fileName).split(path.sep).join('/'), line: line + 1, text: call.getText(file).split('\n')[0]!.trim() });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return out;
}

/** Whether a file (relative, `/`-separated) may hold pg queries. */
export function allowed(file: string): boolean {
  return ALLOWED.some((a) => (a.endsWith('/') ? file.startsWith(a) : file === a));
}

/** The project's program, from tsconfig.json. */
export function projectProgram(root = ROOT): ts.Program {
  const configPath = path.join(root, 'tsconfig.json');
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root);
  return ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
}

/** Every pg query of the project, allowed places included (`all`) or not. */
export function projectSqlCalls(opts: { all?: boolean; root?: string } = {}): SqlCall[] {
  const root = opts.root ?? ROOT;
  const program = projectProgram(root);
  const rootDir = root.split(path.sep).join('/');
  return program
    .getSourceFiles()
    .filter((f) => !f.isDeclarationFile && f.fileName.startsWith(`${rootDir}/`) && !f.fileName.includes('/node_modules/'))
    .flatMap((f) => sqlCallsIn(program, f, root))
    .filter((c) => opts.all || !allowed(c.file));
}

if (require.main === module) {
  const all = process.argv.includes('--all');
  const found = projectSqlCalls({ all });
  for (const c of found) console.error(`${c.file}:${c.line}: pg query outside lib/repositories/: ${c.text}`);
  console.log(
    `check-sql: ${found.length} pg quer${found.length === 1 ? 'y' : 'ies'} ${all ? 'in all' : 'outside lib/repositories/ (and lib/db.ts, infra/migrate.ts, test/)'}`,
  );
  process.exitCode = found.length && !all ? 1 : 0;
}
