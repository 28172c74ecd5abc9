/** teacherRefOf: a dataset frame finds its teacher feature row by key, or through the embedding row it shares with a pixel-identical frame. */
import { MissingArtifactError, type DatasetManifest } from '../../contracts';
import { teacherRefOf } from '../../activities/training/data';

const vec = (row: number) => ({ key: 'embeddings/m/v1/p.f32', row });

test('frames sharing an embedding row share the teacher row; a frame with neither is named', () => {
  const ds = {
    frames: [
      { key: 'frames/a/1.jpg', videoId: 'v1', label: 'x', split: 'train', vector: vec(0) },
      { key: 'frames/a/2.jpg', videoId: 'v1', label: 'x', split: 'validation', vector: vec(0) }, // pixel-identical to 1.jpg
      { key: 'frames/a/3.jpg', videoId: 'v1', label: 'x', split: 'train', vector: vec(1) },
    ],
    unlabeled: [{ key: 'frames/a/4.jpg', videoId: 'v1', vector: vec(2) }],
  } as unknown as DatasetManifest;
  // The teacher's packs list one key per embedding row (here 1.jpg's row 0 under 1.jpg, row 1 under 3.jpg).
  const refs = new Map([
    ['frames/a/1.jpg', { key: 'teacher/p.f32', row: 0 }],
    ['frames/a/3.jpg', { key: 'teacher/p.f32', row: 1 }],
  ]);
  const refOf = teacherRefOf(refs, ds);
  expect(refOf(ds.frames[1]!)).toEqual({ key: 'teacher/p.f32', row: 0 });
  expect(refOf(ds.frames[2]!)).toEqual({ key: 'teacher/p.f32', row: 1 });
  expect(() => refOf(ds.unlabeled[0]!)).toThrow(MissingArtifactError);
  expect(() => refOf(ds.unlabeled[0]!)).toThrow(/frames\/a\/4\.jpg/);
});
