/**
 * A label's data is its own (issue 17), the pure parts: the read-time rule that keeps a label's runs to their own labels (and repairs what an earlier
 * label step copied across labels), the best label of a frame, the weak label step's
 * decision with inheritance and exclusion evidence, and the provenance written with it.
 */
import { hintOf, taskOf, type PlannedFrame } from '../../activities/labeling/plan';
import { provenanceOf } from '../../activities/labeling/provenance';
import { decideWeakLabels, evidenceFor, evidenceKeysOf } from '../../activities/labeling/weak';
import type { DedupeCluster, SearchHit } from '../../contracts';
import { bestLabels, keepLabelRow, type ExclusionEvidence, type LabelledFrameRow, type LabelRuleContext, type StoredLabelRow } from '../../domain/labelled';
import { Taxonomy } from '../../domain/taxonomy';
import { node, testTaxonomy } from '../helpers/taxonomy-fixture';

const taxonomy = testTaxonomy;

const t0 = new Date('2025-01-01T00:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const row = (over: Partial<StoredLabelRow>): StoredLabelRow => ({
  frameKey: 'f1',
  videoId: 'v1',
  workflowId: 'person-1',
  label: 'person',
  source: 'weak',
  confidence: 1,
  annotator: null,
  annotationId: null,
  createdAt: t0,
  updatedAt: t0,
  origin: 'own',
  inheritedFrom: null,
  inheritedKey: null,
  inheritedLabel: null,
  videoCarriesLabel: true,
  sourceRunLabel: null,
  sourceRowExists: false,
  ...over,
});
const ctx: LabelRuleContext = { label: 'person', taxonomy, runIds: new Set(['person-1', 'person-2']) };

describe("keepLabelRow: the label's runs read only the label's own labels", () => {
  it("keeps the label, its descendants and `other` (people's and weak)", () => {
    expect(keepLabelRow(row({}), ctx)).toEqual({ keep: true });
    expect(keepLabelRow(row({ label: 'face', source: 'human', annotator: 'a', annotationId: 1, origin: null }), ctx)).toEqual({ keep: true });
    expect(keepLabelRow(row({ label: 'other', videoCarriesLabel: false }), ctx)).toEqual({ keep: true });
    expect(keepLabelRow(row({ label: 'other', source: 'human', annotator: 'a', annotationId: 1, origin: null }), ctx)).toEqual({ keep: true });
  });

  it("drops another label's label and any model label, whatever the row's origin (the bug's copies)", () => {
    expect(keepLabelRow(row({ label: 'game-cinematic', origin: null }), ctx)).toEqual({ keep: false, reason: 'another-label' });
    expect(keepLabelRow(row({ label: 'cartoon', origin: 'inherited', inheritedFrom: 'person-1', inheritedKey: 'f0', inheritedLabel: 'cartoon' }), ctx)).toEqual(
      {
        keep: false,
        reason: 'another-label',
      },
    );
    expect(keepLabelRow(row({ source: 'model', origin: null }), ctx)).toEqual({ keep: false, reason: 'model-label' });
    expect(keepLabelRow(row({ source: 'model', label: 'other', origin: null, videoCarriesLabel: false }), ctx)).toEqual({ keep: false, reason: 'model-label' });
  });

  it('drops a weak `other` on a frame of a video that carries the label (another label\'s "not me"), unless it is valid evidence', () => {
    expect(keepLabelRow(row({ label: 'other', origin: null }), ctx)).toEqual({ keep: false, reason: 'other-on-a-video-of-the-label' });
    expect(keepLabelRow(row({ label: 'other', origin: 'own' }), ctx)).toEqual({ keep: false, reason: 'other-on-a-video-of-the-label' });
    const evidence = row({
      label: 'other',
      origin: 'evidence',
      inheritedFrom: 'gc-1',
      inheritedKey: 'f9',
      inheritedLabel: 'game-cinematic',
      sourceRunLabel: 'game-cinematic',
      sourceRowExists: true,
    });
    expect(keepLabelRow(evidence, ctx)).toEqual({ keep: true });
  });

  it('an inherited row is kept only when it came from a run of the same label', () => {
    const inherited = { origin: 'inherited' as const, inheritedKey: 'f0', inheritedLabel: 'person' };
    expect(keepLabelRow(row({ ...inherited, inheritedFrom: 'person-2' }), ctx)).toEqual({ keep: true });
    expect(keepLabelRow(row({ ...inherited, inheritedFrom: 'cartoon-1' }), ctx)).toEqual({ keep: false, reason: 'inherited-from-another-label' });
  });

  it("evidence is checked again at every read: source row gone, exclusion removed, `other` or a label outside the source run's family: dropped", () => {
    const ok = {
      label: 'other',
      origin: 'evidence' as const,
      inheritedFrom: 'gc-1',
      inheritedKey: 'f9',
      inheritedLabel: 'cutscene',
      sourceRunLabel: 'game-cinematic',
      sourceRowExists: true,
      videoCarriesLabel: false,
    };
    expect(keepLabelRow(row(ok), ctx)).toEqual({ keep: true });
    const bad = { keep: false, reason: 'evidence-not-valid' };
    expect(keepLabelRow(row({ ...ok, sourceRowExists: false }), ctx)).toEqual(bad);
    expect(keepLabelRow(row({ ...ok, inheritedLabel: 'other' }), ctx)).toEqual(bad);
    expect(keepLabelRow(row({ ...ok, inheritedLabel: 'cartoon', sourceRunLabel: 'cartoon' }), ctx)).toEqual(bad); // person does not exclude cartoon
    expect(keepLabelRow(row({ ...ok, sourceRunLabel: 'cartoon' }), ctx)).toEqual(bad); // a cartoon run never gives `cutscene` of its own
    expect(keepLabelRow(row({ ...ok, sourceRunLabel: null }), ctx)).toEqual(bad);
    expect(
      keepLabelRow(row({ ...ok, inheritedLabel: 'game-cinematic', sourceRunLabel: 'game-cinematic' }), {
        ...ctx,
        taxonomy: new Taxonomy([node('person'), node('game-cinematic')]),
      }),
    ).toEqual(bad);
  });
});

describe('bestLabels', () => {
  it("people's majority first (each person's latest label), else the latest weak label; disagreement leaves the frame out", () => {
    const human = (frameKey: string, annotator: string, label: string, s: number, id: number) =>
      row({ frameKey, source: 'human', annotator, annotationId: id, label, updatedAt: at(s), createdAt: at(s), origin: null });
    const rows = [
      row({ frameKey: 'a', label: 'other', createdAt: at(1), videoCarriesLabel: false }),
      human('a', 'x', 'person', 2, 1),
      human('b', 'x', 'person', 1, 2),
      human('b', 'y', 'other', 1, 3), // two people, two labels: out
      row({ frameKey: 'b', label: 'person' }),
      row({ frameKey: 'c', label: 'person', createdAt: at(1), workflowId: 'person-2' }),
      row({ frameKey: 'c', label: 'other', createdAt: at(5), workflowId: 'person-1', videoCarriesLabel: false }),
      human('d', 'x', 'other', 1, 4),
      human('d', 'x', 'face', 3, 5), // the person changed their mind
    ];
    expect(bestLabels(rows)).toEqual([
      { frameKey: 'a', videoId: 'v1', label: 'person', source: 'human', confidence: 1, workflowId: 'person-1' },
      { frameKey: 'c', videoId: 'v1', label: 'other', source: 'weak', confidence: 1, workflowId: 'person-1' },
      { frameKey: 'd', videoId: 'v1', label: 'face', source: 'human', confidence: 1, workflowId: 'person-1' },
    ]);
  });
});

const cluster = (over: Partial<DedupeCluster>): DedupeCluster => ({
  representative: 'r',
  videoId: 'vp',
  members: ['r'],
  videos: ['vp'],
  exactDuplicates: 0,
  toLabel: true,
  group: 'person',
  ...over,
});
const hit = (videoId: string, role: SearchHit['role'], matchedBy?: string): SearchHit => ({
  videoId,
  role,
  sha256: '0'.repeat(64),
  s3Key: `videos/${videoId}`,
  fileName: `${videoId}.mp4`,
  labels: [],
  ...(matchedBy ? { matchedBy } : {}),
});
const hits = [hit('vp', 'positive', 'label'), hit('vt', 'positive', 'title'), hit('vn', 'negative')];
const own = (frameKey: string, label: string, source: 'human' | 'weak' = 'weak', workflowId = 'person-1'): [string, LabelledFrameRow] => [
  frameKey,
  { frameKey, videoId: 'vp', label, source, confidence: 1, workflowId },
];
const ev = (frameKey: string, videoId: string, source: 'human' | 'weak', label = 'game-cinematic'): [string, ExclusionEvidence] => [
  frameKey,
  { frameKey, videoId, label, runLabel: 'game-cinematic', source, workflowId: 'gc-1' },
];

describe('decideWeakLabels: what a weak run inherits comes from its own label; exclusions give evidence of `other`', () => {
  it("new content: the search's guess (title matches at 0.7); over budget: nothing", () => {
    const d = decideWeakLabels(
      'person',
      [
        cluster({ representative: 'p' }),
        cluster({ representative: 't', videoId: 'vt' }),
        cluster({ representative: 'n', videoId: 'vn' }),
        cluster({ representative: 'x', toLabel: false }),
      ],
      hits,
      new Map(),
      new Map(),
    );
    expect(d.frames.map((f) => [f.key, f.label, f.confidence, f.source])).toEqual([
      ['p', 'person', 1, 'weak'],
      ['t', 'person', 0.7, 'weak'],
      ['n', 'other', 1, 'weak'],
    ]);
    expect(d).toMatchObject({ sent: 3, inherited: 0, evidence: 0 });
  });

  it('seen content copies the first earlier frame with an own label, naming the frame and its run', () => {
    const d = decideWeakLabels(
      'person',
      [
        cluster({ representative: 'p', seenAs: 'e0', seenKeys: ['e0', 'e1'], toLabel: false }),
        cluster({ representative: 'q', seenAs: 'e2', seenKeys: ['e2'], toLabel: false }),
      ],
      hits,
      new Map([own('e1', 'face', 'human', 'person-2')]),
      new Map(),
    );
    expect(d.frames[0]).toEqual({ key: 'p', videoId: 'vp', label: 'face', source: 'human', confidence: 1, inheritedFrom: 'e1', inheritedRun: 'person-2' });
    // Seen, but no own label: labelled like new content.
    expect(d.frames[1]).toMatchObject({ key: 'q', label: 'person', source: 'weak' });
    expect(d.frames[1]!.inheritedFrom).toBeUndefined();
    expect(d).toMatchObject({ sent: 1, inherited: 1, evidence: 0 });
  });

  it("own labels come before evidence; evidence (people's anywhere, weak only off this run's positives) makes `other`, marked", () => {
    const clusters = [
      cluster({ representative: 'a', seenAs: 'ea', seenKeys: ['ea'], toLabel: false }),
      cluster({ representative: 'b', members: ['b', 'b2'] }),
      cluster({ representative: 'c', seenAs: 'ec', seenKeys: ['ec'], toLabel: false }),
      cluster({ representative: 'd' }),
    ];
    const evidence = new Map([ev('ea', 'vx', 'human'), ev('b2', 'vp', 'human', 'cutscene'), ev('ec', 'vx', 'weak'), ev('d', 'vp', 'weak')]);
    const d = decideWeakLabels('person', clusters, hits, new Map([own('ea', 'person')]), evidence);
    expect(d.frames.map((f) => [f.key, f.label])).toEqual([
      ['a', 'person'],
      ['b', 'other'],
      ['c', 'other'],
      ['d', 'person'],
    ]);
    expect(d.frames[1]).toEqual({
      key: 'b',
      videoId: 'vp',
      label: 'other',
      source: 'weak',
      confidence: 1,
      inheritedFrom: 'b2',
      inheritedRun: 'gc-1',
      evidence: { label: 'cutscene', runLabel: 'game-cinematic', source: 'human' },
    });
    // A weak positive of the excluding label on this run's own positive video (the catalog calls it both): the run's search decides.
    expect(d.frames[3]!.evidence).toBeUndefined();
    expect(d).toMatchObject({ sent: 1, inherited: 1, evidence: 2 });
  });

  it('evidence keys: representative, members, earlier frames, once each', () => {
    expect(evidenceKeysOf(cluster({ representative: 'r', members: ['r', 'm'], seenKeys: ['e', 'm'] }))).toEqual(['r', 'm', 'e']);
    expect(evidenceFor(cluster({ members: ['r'] }), new Map([ev('r', 'vn', 'weak')]), (v) => (v === 'vn' ? 'negative' : 'positive'))?.frameKey).toBe('r');
  });
});

describe("provenance and the human path's guess", () => {
  it('own, inherited from a run, or evidence', () => {
    expect(provenanceOf({ label: 'person' })).toEqual({ origin: 'own', inheritedFrom: null, inheritedKey: null, inheritedLabel: null });
    expect(provenanceOf({ label: 'person', inheritedFrom: 'e1', inheritedRun: 'person-2' })).toEqual({
      origin: 'inherited',
      inheritedFrom: 'person-2',
      inheritedKey: 'e1',
      inheritedLabel: 'person',
    });
    expect(
      provenanceOf({ label: 'other', inheritedFrom: 'b2', inheritedRun: 'gc-1', evidence: { label: 'cutscene', runLabel: 'game-cinematic', source: 'human' } }),
    ).toEqual({
      origin: 'evidence',
      inheritedFrom: 'gc-1',
      inheritedKey: 'b2',
      inheritedLabel: 'cutscene',
    });
    expect(() => provenanceOf({ label: 'person', inheritedFrom: 'e1' })).toThrow('without the run');
  });

  it('a task guessed `other` on evidence says why, in its hint and its data', () => {
    const f: PlannedFrame = {
      key: 'frames/aa/bb/1.jpg',
      videoId: 'v',
      timestampS: 1,
      split: 'train',
      required: 1,
      weakLabel: 'other',
      weakConfidence: 1,
      model: null,
      uncertainty: 0,
      evidence: { frameKey: 'frames/aa/bb/1.jpg', label: 'street', runLabel: 'street', source: 'human', workflowId: 'street-1' },
    };
    expect(hintOf(f, 'office')).toBe('Search: people labelled it "street", which excludes "office" · no model yet');
    const t = taskOf(f, { workflowId: 'w', label: 'office', bucket: 'b', modelVersion: null });
    expect(t.data['evidence']).toBe('street (human, street)');
    expect(t.predictions![0]!.result[0]!.value).toEqual({ choices: ['other'] });
    const { evidence: _e, ...plain } = f;
    expect(taskOf({ ...plain, weakLabel: 'office' }, { workflowId: 'w', label: 'office', bucket: 'b', modelVersion: null }).data).not.toHaveProperty(
      'evidence',
    );
  });
});
