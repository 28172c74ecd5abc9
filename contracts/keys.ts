/**
 * The S3 key layout: every object reelset writes is named here, one function per kind
 * of key, with one sanitiser ({@link keySegment}) for every part that comes from outside
 * (labels, workflow ids, file extensions, model keys). Pure: safe in the workflow sandbox.
 *
 * ```
 * videos/<sha256><ext>                                        ingested video, by content
 * frames/<video sha256>/<params hash>/<pts ms>.<ext>          a frame (content-addressed)
 * frames/<video sha256>/<params hash>/manifest.json           a video's frames manifest
 * embeddings/<model key>/<video sha256>/<frames hash>.f32     packed vectors (+ .json index)
 * dedupe-index/<label>/<model key>/<run>.f32                  a label's index segment (+ .json)
 * runs/<run>/<step>/manifest.json                             a step's checkpoint
 * runs/<run>/<step>/<file>                                    a step's other files (contact sheets, checkpoints)
 * runs/<run>/report.html                                      the run's report (steps, charts, failures)
 * runs/<run>/label/predictions.json                           model pre-annotations of a run's representatives
 * runs/<run>/label/plan.json                                  a run's labelling plan (sent, inherited)
 * runs/<run>/predict/predictions.json                         a batch predict run's predictions
 * datasets/<label>/v<N>/manifest.json                         a dataset version
 * models/<label>/v<N>/<role>/<file>                           a published model
 * evaluations/<label>/v<N>/<role>/eval-v<E>.json              a model's predictions on an evaluation-set version
 * ```
 */

/** Longest sanitised segment, in characters (S3 allows 1024 bytes for the whole key). */
export const MAX_SEGMENT_LENGTH = 120;

/**
 * 53-bit string hash (cyrb53, public domain), base 36: pure, fast, stable across
 * platforms. Used to keep sanitised names distinct, never for integrity.
 */
export function shortHash(s: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36).padStart(11, '0');
}

/**
 * Make any string one safe key segment: characters outside `[A-Za-z0-9._-]` become `_`,
 * a segment made only of dots (`.`, `..`) or empty becomes `_`, and the result is at
 * most {@link MAX_SEGMENT_LENGTH} characters. Whenever the result differs from the input
 * (something was replaced or cut), `-<hash of the input>` is appended, so two different
 * inputs never share a segment (`a/b` and `a_b` stay apart). A segment never contains
 * `/`, NUL or a traversal, and is never empty.
 *
 * @example keySegment('new-category-coin-1a2b') === 'new-category-coin-1a2b'
 * @example keySegment('run/extract/v1') === 'run_extract_v1-<hash>'
 */
export function keySegment(raw: string): string {
  let s = raw.replace(/[^A-Za-z0-9._-]/g, '_');
  if (/^\.*$/.test(s)) s = `_${s.replace(/\./g, '_')}`;
  if (s === raw && s.length <= MAX_SEGMENT_LENGTH) return s;
  const hash = shortHash(raw);
  return `${s.slice(0, MAX_SEGMENT_LENGTH - hash.length - 1)}-${hash}`;
}

/** A file extension as a key suffix: `.mp4` from `clip.MP4`; letters and digits only, at most 8, lower case; `''` when none. */
export function extensionOf(fileName: string): string {
  const m = /\.([A-Za-z0-9]{1,8})$/.exec(fileName);
  return m ? `.${m[1]!.toLowerCase()}` : '';
}

const hex64 = /^[0-9a-f]{64}$/;
const hexN = /^[0-9a-f]{8,64}$/;

function checkHex(value: string, what: string, re = hex64): string {
  if (!re.test(value)) throw new TypeError(`${what} must be lower-case hex, got ${JSON.stringify(value).slice(0, 80)}`);
  return value;
}

// ------------------------------------------------------------------------- videos ---

/** Key of an ingested video: `videos/<sha256><ext>` (content-addressed; the extension helps people and ffprobe). */
export function videoKey(sha256: string, fileName: string): string {
  return `videos/${checkHex(sha256, 'video sha256')}${extensionOf(fileName)}`;
}

// ------------------------------------------------------------------------- frames ---

/** Prefix of one video's frames for one set of extraction parameters: `frames/<sha256>/<params hash>/`. */
export function framesPrefix(videoSha256: string, paramsHash: string): string {
  return `frames/${checkHex(videoSha256, 'video sha256')}/${checkHex(paramsHash, 'params hash', hexN)}/`;
}

/** Key of a video's frames manifest. */
export function framesManifestKey(videoSha256: string, paramsHash: string): string {
  return `${framesPrefix(videoSha256, paramsHash)}manifest.json`;
}

/**
 * Key of one frame: its presentation time in whole milliseconds, 9 digits, `m` before a
 * negative time (so keys sort by time within a sign).
 */
export function frameKey(videoSha256: string, paramsHash: string, timestampS: number, ext: 'jpg' | 'webp'): string {
  const ms = Math.round(timestampS * 1000);
  return `${framesPrefix(videoSha256, paramsHash)}${ms < 0 ? 'm' : ''}${String(Math.abs(ms)).padStart(9, '0')}.${ext}`;
}

// --------------------------------------------------------------------- embeddings ---

/**
 * Key (without extension) of a video's packed vectors:
 * `embeddings/<model key>/<video sha256>/<frames hash>`; `.f32` holds the rows, `.json`
 * the index. `framesHash` is a hex digest over the frames' content hashes, so the key
 * changes when the model or any frame changes.
 */
export function vectorPackBase(modelKey: string, videoSha256: string, framesHash: string): string {
  return `embeddings/${keySegment(modelKey)}/${checkHex(videoSha256, 'video sha256')}/${checkHex(framesHash, 'frames hash', hexN)}`;
}

/** Key (without extension) of one run's segment of a label's near-duplicate index. */
export function dedupeSegmentBase(label: string, modelKey: string, workflowId: string): string {
  return `dedupe-index/${keySegment(label)}/${keySegment(modelKey)}/${keySegment(workflowId)}`;
}

// --------------------------------------------------------------------------- runs ---

/** Prefix of one workflow run: `runs/<workflow id>`. */
export function runPrefix(workflowId: string): string {
  return `runs/${keySegment(workflowId)}`;
}

/** Prefix of one step's files: `runs/<workflow id>/<step>`. */
export function stepPrefix(workflowId: string, step: string): string {
  return `${runPrefix(workflowId)}/${keySegment(step)}`;
}

/** Key of a file a step writes beside its manifest: `runs/<workflow id>/<step>/<file>` (each `/`-separated part sanitised). */
export function stepFileKey(workflowId: string, step: string, file: string): string {
  return `${stepPrefix(workflowId, step)}/${file.split('/').map(keySegment).join('/')}`;
}

/** Prefix of the model a training step (`train`: teacher, `distill`: student) leaves in its run: `runs/<run>/<step>/model`. */
export function runModelPrefix(workflowId: string, step: 'train' | 'distill'): string {
  return stepFileKey(workflowId, step, 'model');
}

/** Prefix of a training step's per-epoch checkpoint: `runs/<run>/<step>/checkpoint`. */
export function checkpointPrefix(workflowId: string, step: 'train' | 'distill'): string {
  return stepFileKey(workflowId, step, 'checkpoint');
}

/** Key of a step's result manifest: `runs/<workflow id>/<step>/manifest.json`. */
export function stepManifestKey(workflowId: string, step: string): string {
  return stepFileKey(workflowId, step, 'manifest.json');
}

/** Key of a run's HTML report: `runs/<workflow id>/report.html`. */
export function runReportKey(workflowId: string): string {
  return `${runPrefix(workflowId)}/report.html`;
}

/** Key of a dedupe contact sheet for one label group. */
export function contactSheetKey(workflowId: string, group: string): string {
  return stepFileKey(workflowId, 'dedupe', `contact-sheet-${keySegment(group)}.jpg`);
}

// ----------------------------------------------------------------- datasets, models ---

/** Key of a dataset version's manifest: `datasets/<name>/v<version>/manifest.json`. */
export function datasetManifestKey(name: string, version: number): string {
  return `datasets/${keySegment(name)}/v${checkVersion(version)}/manifest.json`;
}

/** Prefix of a published model's files: `models/<name>/v<version>/<role>`. */
export function modelPrefix(name: string, version: number, role: string): string {
  return `models/${keySegment(name)}/v${checkVersion(version)}/${keySegment(role)}`;
}

function checkVersion(v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new TypeError(`version must be an integer >= 1, got ${v}`);
  return v;
}

/** Key of the model predictions for a run's representatives (written by `predictFrames`): `runs/<run>/label/predictions.json`. */
export function predictionsKey(workflowId: string): string {
  return stepFileKey(workflowId, 'label', 'predictions.json');
}

/** Key of the labelling plan of a run (which frames went to people, which were inherited): `runs/<run>/label/plan.json`. */
export function labelingPlanKey(workflowId: string): string {
  return stepFileKey(workflowId, 'label', 'plan.json');
}

/** Key of a batch predict run's predictions: `runs/<run>/predict/predictions.json`. */
export function batchPredictionsKey(workflowId: string): string {
  return stepFileKey(workflowId, 'predict', 'predictions.json');
}

/** Key of a model's per-frame predictions on an evaluation-set version: `evaluations/<name>/v<version>/<role>/eval-v<E>.json`. */
export function evaluationKey(name: string, version: number, role: 'teacher' | 'student', evalVersion: number): string {
  return `evaluations/${keySegment(name)}/v${version}/${keySegment(role)}/eval-v${evalVersion}.json`;
}
