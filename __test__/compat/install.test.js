'use strict'

// A clean install on every supported Node line: `npm install` and `npm ci` of this repository's
// package.json and lockfile warn of nothing, such as a dev tool's dependency that dropped a Node
// line (EBADENGINE). npm itself is this machine's npm, run by each Node line in turn, planning
// the install (--dry-run: what depends on the Node line is decided there). The real install
// is .ci/run's `npm ci`, which fails CI on any warning.

const { test, before } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { tempDir, spawnProcess, exitOf } = require('../helpers.js')
const { selected, ensureRuntime } = require('./runtimes.js')

const ROOT = path.join(__dirname, '..', '..')
const nodes = selected().filter((r) => r.name.startsWith('node'))
const ready = new Map()
let npmCli

before(() => {
  for (const r of nodes) ready.set(r.name, ensureRuntime(r))
  npmCli = /npm-cli\.js$/.test(process.env.npm_execpath ?? '')
    ? process.env.npm_execpath
    : path.join(execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm', 'bin', 'npm-cli.js')
  assert.ok(fs.existsSync(npmCli), `npm's npm-cli.js at ${npmCli}`)
})

async function npm(t, node, dir, args) {
  const child = spawnProcess(t, node.command, [npmCli, ...args, '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir })
  const exit = await exitOf(child, 120_000, `npm ${args[0]} on ${node.name}`)
  const output = `${child.stdoutText}\n${child.stderrText}`
  assert.equal(exit.code, 0, `npm ${args[0]} on ${node.name} failed: ${output}`)
  return output
}

for (const runtime of nodes) {
  test(`npm install and npm ci print no warning on ${runtime.name}`, async (t) => {
    const node = ready.get(runtime.name)
    const dir = tempDir(t)
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(ROOT, f), path.join(dir, f))
    for (const command of ['install', 'ci']) {
      const output = await npm(t, node, dir, [command])
      const warnings = output.split('\n').filter((line) => /\bwarn\b/i.test(line))
      assert.deepEqual(warnings, [], `npm ${command} on ${runtime.name} (${runtime.version}) warned`)
    }
  })
}
