/**
 * The taxonomy the label-ownership and taxonomy unit tests share: person > face;
 * animation > cartoon; game-cinematic > cutscene; scene > office, street. `office`
 * excludes `street` and `person` excludes `game-cinematic` (symmetric, inherited by
 * descendants); `people` and `toon` are synonyms.
 */
import { Taxonomy, type TaxonomyNode } from '../../domain/taxonomy';

/** A taxonomy node with defaults: no parent, no exclusions, no synonyms. */
export const node = (name: string, parent: string | null = null, excludes: string[] = [], synonyms: string[] = []): TaxonomyNode => ({
  name,
  parent,
  synonyms,
  excludes,
});

/** The shared fixture taxonomy (see the module comment). */
export const testTaxonomy = new Taxonomy([
  node('person', null, ['game-cinematic'], ['people']),
  node('face', 'person'),
  node('animation'),
  node('cartoon', 'animation', [], ['toon']),
  node('game-cinematic'),
  node('cutscene', 'game-cinematic'),
  node('scene'),
  node('office', 'scene', ['street']),
  node('street', 'scene'),
]);
