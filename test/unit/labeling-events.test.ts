import { parseWebhook, secretMatches } from '../../workers/labeling-events';

// Shapes as Label Studio 1.23.2 sends them (checked with a capturing server); the project
// object carries the project's token, which the parser must drop.
const project = { id: 7, title: 'reelset: cup', token: 'secret-project-token' };

describe('parseWebhook', () => {
  it('reads the annotation, task, project and run of a created or updated annotation', () => {
    for (const action of ['ANNOTATION_CREATED', 'ANNOTATION_UPDATED']) {
      const e = parseWebhook(
        JSON.stringify({
          action,
          annotation: { id: 41, completed_by: 3, task: 12, result: [{ type: 'choices', value: { choices: ['cup'] } }] },
          task: { id: 12, project: 7, data: { image: 's3://reelset/frames/a.jpg', frameKey: 'frames/a.jpg', runId: 'new-category-cup-1' } },
          project,
        }),
      );
      expect(e).toEqual({ action, annotationIds: [41], deletedAnnotationIds: [], taskIds: [12], projectId: 7, runId: 'new-category-cup-1', full: false });
      expect(JSON.stringify(e)).not.toContain('secret-project-token');
    }
  });

  it('a deletion event carries annotation ids only', () => {
    const e = parseWebhook(JSON.stringify({ action: 'ANNOTATIONS_DELETED', annotation: null, annotations: [{ id: 41 }, { id: 42 }], task: null, project }));
    expect(e).toEqual({
      action: 'ANNOTATIONS_DELETED',
      annotationIds: [],
      deletedAnnotationIds: [41, 42],
      taskIds: [],
      projectId: 7,
      runId: null,
      full: false,
    });
  });

  it.each([
    ['an event without payload', JSON.stringify({ action: 'ANNOTATION_CREATED' }), 'ANNOTATION_CREATED'],
    ['an empty body', '', 'UNKNOWN'],
    ['a body that is not JSON', 'action=ANNOTATION_CREATED', 'UNKNOWN'],
    ['a JSON array', '[1,2]', 'UNKNOWN'],
    ['ids of the wrong type', JSON.stringify({ action: 'ANNOTATION_UPDATED', annotation: { id: '41; DROP TABLE' }, task: { id: -3 } }), 'ANNOTATION_UPDATED'],
    ['an action that is not an action name', JSON.stringify({ action: '<script>' }), 'UNKNOWN'],
  ])('%s asks for a full reconciliation instead of failing', (_what, body, action) => {
    expect(parseWebhook(body)).toEqual({ action, annotationIds: [], deletedAnnotationIds: [], taskIds: [], projectId: null, runId: null, full: true });
  });
});

describe('secretMatches', () => {
  it('accepts the secret and nothing else, whatever the length', () => {
    expect(secretMatches('reelset-webhook-secret', 'reelset-webhook-secret')).toBe(true);
    expect(secretMatches('reelset-webhook-secreT', 'reelset-webhook-secret')).toBe(false);
    expect(secretMatches('reelset-webhook-secret-and-more', 'reelset-webhook-secret')).toBe(false);
    expect(secretMatches('r', 'reelset-webhook-secret')).toBe(false);
    expect(secretMatches('', 'reelset-webhook-secret')).toBe(false);
    expect(secretMatches(undefined, 'reelset-webhook-secret')).toBe(false);
  });
});
