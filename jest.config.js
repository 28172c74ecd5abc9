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
// Projects that start Temporal workers in the test process: none outlives its test file (a
// timed-out test would leave one polling for ever, keeping jest from exiting).
const withWorkers = { ...common, setupFilesAfterEnv: ['<rootDir>/test/helpers/worker-guard.ts'] };
module.exports = {
  // One line per test file to $REELSET_JEST_PROGRESS (infra/test.sh prints it when a run is stopped).
  reporters: ['default', '<rootDir>/test/helpers/progress-reporter.js'],
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...withWorkers, displayName: 'workflow', testMatch: ['<rootDir>/test/workflow/**/*.test.ts'] },
    { ...withWorkers, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    { ...withWorkers, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
