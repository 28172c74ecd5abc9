import { orderLabels } from '../../activities/labeling/human';
import { hintOf, orderForPeople, taskOf, uncertaintyOf, type PlannedFrame } from '../../activities/labeling/plan';
import { instructionsHtml, labelConfigXml } from '../../activities/labeling/project';
import { topAndMargin } from '../../activities/training/predict-frames';

const frame = (over: Partial<PlannedFrame>): PlannedFrame => ({
  key: 'frames/aa/bb/000001000.jpg',
  videoId: 'v1',
  timestampS: 1,
  split: 'train',
  required: 1,
  weakLabel: 'cup',
  weakConfidence: 1,
  model: null,
  uncertainty: 0,
  ...over,
});

describe('label configuration and instructions', () => {
  it('one required single choice per taxonomy choice, with hotkeys, on the image', () => {
    const x = labelConfigXml(['person', 'face', 'hand', 'other']);
    expect(x).toContain('<Image name="image" value="$image"');
    expect(x).toContain('<Choices name="label" toName="image" choice="single-radio" showInline="true" required="true">');
    expect(x.match(/<Choice value="([^"]+)" hotkey="(\d)"\/>/g)).toEqual([
      '<Choice value="person" hotkey="1"/>',
      '<Choice value="face" hotkey="2"/>',
      '<Choice value="hand" hotkey="3"/>',
      '<Choice value="other" hotkey="4"/>',
    ]);
    expect(labelConfigXml(['a"<b>&', 'other'])).toContain('value="a&quot;&lt;b&gt;&amp;"');
  });

  it('instructions say what the label, its children and other mean', () => {
    const h = instructionsHtml({
      label: 'person',
      choices: ['person', 'face', 'other'],
      synonyms: ['people'],
      path: ['person'],
      children: [{ name: 'face', synonyms: ['faces'] }],
    });
    expect(h).toContain('<b>person</b> (also called people)');
    expect(h).toContain('<b>face</b> (faces): a kind of person');
    expect(h).toContain('<b>other</b>: no person in the frame');
  });
});

describe('ordering and pre-annotations', () => {
  it('uncertainty: 1 - margin with a model, 1 - weak confidence without', () => {
    expect(uncertaintyOf(1, { margin: 0.9 })).toBeCloseTo(0.1);
    expect(uncertaintyOf(0.7, null)).toBeCloseTo(0.3);
    expect(uncertaintyOf(1, null)).toBe(0);
  });

  it('most uncertain first, ties by key (stable across retries)', () => {
    const order = orderForPeople([frame({ key: 'c', uncertainty: 0.1 }), frame({ key: 'b', uncertainty: 0.8 }), frame({ key: 'a', uncertainty: 0.1 })]);
    expect(order.map((f) => f.key)).toEqual(['b', 'a', 'c']);
  });

  it('the task carries an s3 URI (no credential, no presigned URL), the frame, video, time and run, and both pre-annotations', () => {
    const t = taskOf(frame({ model: { label: 'other', score: 0.61, margin: 0.22 }, uncertainty: 0.78, split: 'validation' }), {
      workflowId: 'new-category-cup-x',
      label: 'cup',
      bucket: 'reelset',
      modelVersion: 'cup-v3-teacher',
    });
    expect(t.data).toMatchObject({
      image: 's3://reelset/frames/aa/bb/000001000.jpg',
      frameKey: 'frames/aa/bb/000001000.jpg',
      videoId: 'v1',
      timestampS: 1,
      runId: 'new-category-cup-x',
      split: 'validation',
      weakLabel: 'cup',
      modelLabel: 'other',
      modelScore: 0.61,
    });
    expect(JSON.stringify(t)).not.toMatch(/X-Amz|Signature|secret|AccessKey/i);
    expect(t.predictions).toEqual([
      { model_version: 'weak-search', score: 1, result: [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cup'] } }] },
      { model_version: 'cup-v3-teacher', score: 0.61, result: [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['other'] } }] },
    ]);
    expect(hintOf(frame({}), 'cup')).toBe('Search: catalog says "cup" · no model yet');
    expect(hintOf(frame({ weakLabel: 'other' }), 'cup')).toBe('Search: a video without "cup" · no model yet');
  });

  it('manifest labels: the run label first, other last, the rest in between', () => {
    expect(orderLabels('person', ['other', 'hand', 'person', 'face', 'hand'])).toEqual(['person', 'face', 'hand', 'other']);
    expect(orderLabels('cup', [])).toEqual(['cup', 'other']);
  });

  it('topAndMargin: top class, probability and lead over the runner-up per row', () => {
    const r = topAndMargin(Float32Array.from([0.2, 0.7, 0.1, 0.5, 0.5, 0]), 3);
    expect(r[0]!.index).toBe(1);
    expect(r[0]!.score).toBeCloseTo(0.7);
    expect(r[0]!.margin).toBeCloseTo(0.5);
    expect(r[1]!.margin).toBeCloseTo(0);
  });
});
