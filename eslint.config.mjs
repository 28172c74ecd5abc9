// ESLint (flat config): typescript-eslint with the rules the Temporal samples use, and
// the project's layering, checked on every `npm run lint` (CI runs it):
//   contracts/  pure definitions: no Node built-ins, no lib/, activities/, workflows/
//   lib/        the library layer (clients, I/O helpers): contracts only among the project's folders
//   domain/     shared domain code (backbones, classifiers, metrics, split, agreement, scope,
//               taxonomy, catalog search): contracts and lib only
//   activities/<domain>/  contracts, lib and domain only: never another activities domain
//   cli/, bench/, workers/, infra/  a domain through its public surface (`activities/<domain>/index.ts`)
//   workflows/  deterministic: no Node built-ins, no I/O clients, activities as types only
// and no import cycle anywhere (import-x/no-cycle).
import { builtinModules } from 'node:module';
import { readdirSync } from 'node:fs';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
const ioClients = [
  '@aws-sdk/*',
  '@smithy/*',
  'pg',
  'sharp',
  'fluent-ffmpeg',
  '@tensorflow/*',
  'onnxruntime-node',
  'usearch',
  'pino',
  '@temporalio/activity',
  '@temporalio/worker',
  '@temporalio/client',
];
const domains = readdirSync(new URL('./activities', import.meta.url), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', 'dist/**', 'coverage/**', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  importX.flatConfigs.typescript,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: './contracts',
              from: ['./lib', './activities', './workflows', './workers', './cli', './bench', './infra', './test'],
              message: 'contracts are pure: they import nothing of the project but themselves',
            },
            {
              target: './lib',
              from: ['./domain', './activities', './workflows', './workers', './cli', './bench', './test'],
              message: 'lib/ is the library layer: contracts only',
            },
            {
              target: './domain',
              from: ['./activities', './workflows', './workers', './cli', './bench', './test'],
              message: 'domain/ is the shared domain code: contracts and lib only',
            },
            ...domains.map((d) => ({
              target: `./activities/${d}`,
              from: domains.filter((o) => o !== d).map((o) => `./activities/${o}`),
              message: `activities/${d} imports only contracts/, lib/, domain/ and its own folder, never another domain`,
            })),
            ...domains.map((d) => ({
              target: ['./cli', './bench', './workers', './infra'],
              from: `./activities/${d}`,
              except: ['./index.ts'],
              message: `entry points use activities/${d} through its public surface (activities/${d}/index.ts), not its inner files`,
            })),
            { target: './activities', from: ['./workflows', './workers', './cli'], message: 'activities never import workflow, worker or CLI code' },
          ],
        },
      ],
    },
  },
  {
    files: ['contracts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: nodeBuiltins, patterns: [{ group: ioClients, message: 'contracts are pure: safe in the workflow sandbox' }] },
      ],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins,
          patterns: [
            { group: ioClients, message: 'workflow code is deterministic: I/O clients belong in activities' },
            { group: ['../lib', '../lib/*'], message: 'workflow code imports contracts, not the Node library layer' },
            { group: ['../activities', '../activities/*'], allowTypeImports: true, message: 'workflows see activities as types only (`import type`)' },
          ],
        },
      ],
    },
  },
);
