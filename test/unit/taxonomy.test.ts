/**
 * The taxonomy's exclusions (issue 17): symmetric, inherited by descendants, never within
 * a label's own line; the taxonomy file's `excludes` field.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readTaxonomyFile } from '../../activities/catalog/catalog-file';
import { CatalogError } from '../../contracts';
import { exclusionProblems } from '../../domain/taxonomy';
import { node, testTaxonomy } from '../helpers/taxonomy-fixture';
import { rejectionOf } from '../helpers/errors';

const taxonomy = testTaxonomy;

describe('taxonomy exclusions', () => {
  it('hold both ways, whichever side declared them', () => {
    expect(taxonomy.excludes('office', 'street')).toBe(true);
    expect(taxonomy.excludes('street', 'office')).toBe(true);
    expect(taxonomy.excludes('game-cinematic', 'person')).toBe(true);
  });

  it("descendants inherit their ancestors' exclusions, on both sides", () => {
    expect(taxonomy.excludes('face', 'game-cinematic')).toBe(true);
    expect(taxonomy.excludes('person', 'cutscene')).toBe(true);
    expect(taxonomy.excludes('face', 'cutscene')).toBe(true);
    expect(taxonomy.excludedBy('face')).toEqual(['cutscene', 'game-cinematic']);
    expect(taxonomy.excludedBy('cutscene')).toEqual(['face', 'person']);
  });

  it('nothing else is exclusive: not undeclared pairs, not a label and its own line, not `other`, not unknown labels', () => {
    expect(taxonomy.excludes('person', 'cartoon')).toBe(false);
    expect(taxonomy.excludes('office', 'scene')).toBe(false);
    expect(taxonomy.excludes('scene', 'office')).toBe(false);
    expect(taxonomy.excludes('person', 'person')).toBe(false);
    expect(taxonomy.excludes('person', 'other')).toBe(false);
    expect(taxonomy.excludedBy('animation')).toEqual([]);
    expect(taxonomy.excludedBy('nobody-knows')).toEqual([]);
  });

  it('family, ancestors and synonyms', () => {
    expect(taxonomy.family('person')).toEqual(['person', 'face']);
    expect(taxonomy.family('unknown')).toEqual(['unknown']);
    expect(taxonomy.ancestorsOrSelf('cartoon')).toEqual(['cartoon', 'animation']);
    expect(taxonomy.canonical('toon')).toBe('cartoon');
    expect(taxonomy.canonical('people')).toBe('person');
    expect(taxonomy.canonical('person')).toBe('person');
  });

  it('a label may not exclude itself, an ancestor or a descendant', () => {
    expect(exclusionProblems([node('a', null, ['a']), node('b', 'a', ['a']), node('c', null, ['d']), node('d', 'c')])).toEqual([
      'label "a" excludes itself',
      'label "b" excludes its ancestor "a"',
      'label "c" excludes its descendant "d"',
    ]);
    expect(exclusionProblems([node('office', 'scene', ['street']), node('street', 'scene'), node('scene')])).toEqual([]);
  });

  it('the taxonomy file carries `excludes`; a bad one is refused with the label named', async () => {
    const shipped = await readTaxonomyFile(path.resolve(__dirname, '../../infra/taxonomy.json'));
    expect(shipped.find((e) => e.name === 'office')!.excludes).toEqual(['street']);
    expect(shipped.find((e) => e.name === 'person')!.excludes).toEqual([]);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-taxonomy-'));
    try {
      const file = path.join(dir, 't.json');
      await fs.writeFile(file, JSON.stringify([{ name: 'a' }, { name: 'b', parent: 'a', excludes: ['a'] }]));
      const err = await rejectionOf(readTaxonomyFile(file), CatalogError);
      expect(err.message).toContain('field "excludes": label "b" excludes its ancestor "a"');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
