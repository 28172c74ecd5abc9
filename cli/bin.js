#!/usr/bin/env node
// The `reelset` command (package.json "bin"): runs cli/reelset.ts through tsx's loader.
require('tsx/cjs');
require('./reelset.ts')
  .main(process.argv)
  .then((code) => {
    process.exitCode = code;
  });
