'use strict'
// The benchmark harness works: `npm run bench -- --quick` runs every case briefly and writes
// its outputs (checked by the harness). Timings are not asserted.

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnFixture, exitOf } = require('./helpers.js')

test('npm run bench -- --quick completes every case', async (t) => {
  const run = path.join(__dirname, '..', 'benchmark', 'run.js')
  const child = spawnFixture(t, path.relative(path.join(__dirname, 'fixtures'), run), ['--quick'])
  const { code, signal } = await exitOf(child, 240_000, 'the quick benchmark')
  assert.equal(signal, null)
  assert.equal(code, 0, child.stderrText.slice(-2000))
  for (const section of ['1. Latest value', '2. Cross-process round trip', '3. Channel streaming', '4. Footprint', '5. Keyv stores', '6. SharedMap', '1b. A 4 MiB value', '1c. A 902-byte object', 'Targets']) {
    assert.ok(child.stdoutText.includes(section), `the report has "${section}"`)
  }
})
