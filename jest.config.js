/**
 * Jest projects: unit (pure logic), workflow (TestWorkflowEnvironment with mocked
 * activities), integration (real Postgres, S3 server, ffmpeg, Temporal) and e2e (the
 * whole new-category workflow on ../shared/data). `infra/test.sh` starts the services
 * before jest runs; integration and e2e tests fail (never skip) when one is missing.
 */
const transform = { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] };
const common = {
  transform,
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'json'],
  roots: ['<rootDir>/test'],
  modulePathIgnorePatterns: ['<rootDir>/.data/'],
};
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'workflow', testMatch: ['<rootDir>/test/workflow/**/*.test.ts'] },
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
