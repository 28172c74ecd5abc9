#!/usr/bin/env node
// The `reelset` command (package.json "bin"): runs cli/reelset.ts through tsx's loader, on
// Node.js 22 or later. Started by an older node (the machine's, when infra/install.sh put
// Node 22 in $REELSET_TOOLS_DIR/node), it runs itself again on that Node 22.
const path = require('node:path');
const fs = require('node:fs');
const { spawn } = require('node:child_process');

const major = Number(process.versions.node.split('.')[0]);
const dataDir = process.env.REELSET_DATA_DIR || path.join(__dirname, '..', '.data');
const node22 = path.join(process.env.REELSET_TOOLS_DIR || path.join(dataDir, 'tools'), 'node', 'bin', 'node');
if (major < 22 && fs.existsSync(node22)) {
  const child = spawn(node22, [__filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  // Ctrl-C reaches the child from the terminal (same process group): not forwarded twice. A signal sent to this pid is.
  process.on('SIGINT', () => undefined);
  for (const s of ['SIGTERM', 'SIGHUP']) process.on(s, () => child.kill(s));
  child.on('exit', (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 1)));
} else {
  require('tsx/cjs');
  require('./reelset.ts')
    .main(process.argv)
    .then((code) => {
      process.exitCode = code;
    });
}
