/** The import-cycle check of `npm run lint` (infra/check-cycles.ts): what it calls a cycle. */
import { cycles } from '../../infra/check-cycles';

test('finds each cycle once, type-only edges counted like the others; a chain or a diamond is no cycle', () => {
  const g = new Map<string, string[]>([
    ['inputs.ts', ['labeling.ts']],
    ['labeling.ts', ['manifests.ts']],
    ['manifests.ts', ['inputs.ts', 'extraction.ts']],
    ['extraction.ts', []],
    ['a.ts', ['b.ts', 'c.ts']],
    ['b.ts', ['d.ts']],
    ['c.ts', ['d.ts']],
    ['d.ts', []],
    ['self.ts', ['self.ts']],
  ]);
  expect(cycles(g)).toEqual([['inputs.ts', 'labeling.ts', 'manifests.ts'], ['self.ts']]);
  expect(
    cycles(
      new Map([
        ['x.ts', ['y.ts']],
        ['y.ts', []],
      ]),
    ),
  ).toEqual([]);
});
