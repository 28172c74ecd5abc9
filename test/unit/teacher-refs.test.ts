/**
 * teacherRefOf: a dataset frame finds its teacher feature row by key, or by the content of the
 * embedding row it points at (a pixel-identical frame's row, or a row of a pack cached from an
 * earlier dataset that listed other keys).
 */
import { MissingArtifactError, type DatasetManifest } from '../../contracts';
import { teacherRefOf, type TeacherRows } from '../../activities/training/data';

const PACK = 'embeddings/m/v1/p.f32';
const vec = (row: number) => ({ key: PACK, row });
const teacher = (row: number) => ({ key: 'teacher/p.f32', row });
/** Content of the embedding rows (as the embed step's index gives it): rows 0, 1, 2. */
const content = new Map([
  [`${PACK}#0`, 'sha-0'],
  [`${PACK}#1`, 'sha-1'],
  [`${PACK}#2`, 'sha-2'],
]);

test('frames sharing an embedding row share the teacher row; a frame found neither way is named', () => {
  const ds = {
    frames: [
      { key: 'frames/a/1.jpg', videoId: 'v1', label: 'x', split: 'train', vector: vec(0) },
      { key: 'frames/a/2.jpg', videoId: 'v1', label: 'x', split: 'validation', vector: vec(0) }, // pixel-identical to 1.jpg
      { key: 'frames/a/3.jpg', videoId: 'v1', label: 'x', split: 'train', vector: vec(1) },
    ],
    unlabeled: [{ key: 'frames/a/4.jpg', videoId: 'v1', vector: vec(2) }],
  } as unknown as DatasetManifest;
  // The teacher's packs list one key per embedding row (row 0 under 1.jpg, row 1 under 3.jpg) and nothing for row 2.
  const rows: TeacherRows = {
    byKey: new Map([
      ['frames/a/1.jpg', teacher(0)],
      ['frames/a/3.jpg', teacher(1)],
    ]),
    bySha256: new Map([
      ['sha-0', teacher(0)],
      ['sha-1', teacher(1)],
    ]),
  };
  const refOf = teacherRefOf(rows, content);
  expect(refOf(ds.frames[0]!)).toEqual(teacher(0));
  expect(refOf(ds.frames[1]!)).toEqual(teacher(0));
  expect(refOf(ds.frames[2]!)).toEqual(teacher(1));
  expect(() => refOf(ds.unlabeled[0]!)).toThrow(MissingArtifactError);
  expect(() => refOf(ds.unlabeled[0]!)).toThrow(/frames\/a\/4\.jpg/);
});

test('a pack cached from an earlier dataset, listing a key this dataset does not have, is found by content', () => {
  // The earlier dataset had 1.jpg and 2.jpg (pixel-identical) and its pack listed 2.jpg; this
  // one has only 1.jpg. By key alone the train step failed with MissingArtifactError (seen in
  // the promotion e2e test on a fresh clone).
  const rows: TeacherRows = { byKey: new Map([['frames/a/2.jpg', teacher(0)]]), bySha256: new Map([['sha-0', teacher(0)]]) };
  const refOf = teacherRefOf(rows, content);
  expect(refOf({ key: 'frames/a/1.jpg', vector: vec(0) })).toEqual(teacher(0));
  // Content unknown (no embedding index row) and key unknown: named.
  expect(() => refOf({ key: 'frames/a/9.jpg', vector: vec(7) })).toThrow(/frames\/a\/9\.jpg/);
});
