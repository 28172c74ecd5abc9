/**
 * Jest reporter: appends one line per test file as it starts and ends (time, project,
 * path, duration, failed test names) to the file named by REELSET_JEST_PROGRESS, so
 * `infra/test.sh` can say which file was running when the suite was stopped, and what
 * failed, even when the run never reached jest's own summary. A no-op when the variable
 * is unset. (Plain JavaScript: jest loads reporters without its transform.)
 */
const fs = require('node:fs');
const path = require('node:path');

class ProgressReporter {
  constructor() {
    this.file = process.env.REELSET_JEST_PROGRESS || null;
    if (this.file) fs.mkdirSync(path.dirname(this.file), { recursive: true });
  }

  write(line) {
    if (this.file) fs.appendFileSync(this.file, `${new Date().toISOString().slice(11, 19)} ${line}\n`);
  }

  name(test) {
    const project = test.context.config.displayName ? `${test.context.config.displayName.name} ` : '';
    return `${project}${path.relative(test.context.config.rootDir, test.path)}`;
  }

  onRunStart(results) {
    this.write(`run start: ${results.numTotalTestSuites} files`);
  }

  onTestFileStart(test) {
    this.write(`start ${this.name(test)}`);
  }

  onTestFileResult(test, result) {
    const failed = result.testResults.filter((t) => t.status === 'failed');
    const status = result.testExecError || failed.length ? 'FAIL' : 'PASS';
    const seconds = ((result.perfStats.end - result.perfStats.start) / 1000).toFixed(1);
    this.write(`${status} ${this.name(test)} ${seconds} s (${result.numPassingTests} passed, ${result.numFailingTests} failed)`);
    if (result.testExecError) this.write(`  error: ${String(result.testExecError.message).split('\n')[0]}`);
    for (const t of failed)
      this.write(
        `  failed: ${t.fullName}: ${String(t.failureMessages[0] ?? '')
          .split('\n')[0]
          .slice(0, 300)}`,
      );
  }

  onRunComplete(_contexts, results) {
    this.write(`run end: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${results.numFailedTestSuites} files failed`);
  }
}

module.exports = ProgressReporter;
