#!/usr/bin/env node
'use strict'

// Runs node's test runner over the test files directly inside a folder (default __test__):
// `*.test.js`, `*.test.cjs` and `*.test.mjs`, not fixtures or subfolders. Node 22 and later read
// `node --test <folder>` as a module path, and Node 20 has no globs in `--test`, so the files
// are listed here: the same command works on every supported Node line and on every OS.
//   node scripts/run-tests.js [folder] [-- extra node --test options, e.g. --test-name-pattern=x]

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const args = process.argv.slice(2)
const sep = args.indexOf('--')
const extra = sep === -1 ? [] : args.splice(sep).slice(1)
const folder = path.resolve(args[0] ?? path.join(__dirname, '..', '__test__'))

const files = fs
  .readdirSync(folder, { withFileTypes: true })
  .filter((entry) => entry.isFile() && /\.test\.[cm]?js$/.test(entry.name))
  .map((entry) => path.join(folder, entry.name))
  .sort()
if (files.length === 0) {
  console.error(`run-tests: no *.test.js, *.test.cjs or *.test.mjs file in ${folder}`)
  process.exit(1)
}

const run = spawnSync(process.execPath, ['--test', ...extra, ...files], { stdio: 'inherit' })
if (run.error) throw run.error
process.exit(run.status ?? 1)
