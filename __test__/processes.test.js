'use strict'
// Readers and writers in separate processes: no torn values, and killed writers do not
// stop the others.

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { SharedObject } = require('..')
const { tempDir, segment, spawnFixture, waitFor, exitOf } = require('./helpers.js')
const { check } = require('./fixtures/checked-value.js')
const { fillsInProgress } = require('./fixtures/format2.js')

test('a reader process never sees a torn value while a writer process rewrites long values', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  SharedObject.open(file, { size: 70_000 }).close()
  const writes = 40_000
  const reader = spawnFixture(t, 'reader-check.js', [file, writes])
  await waitFor(() => reader.lines.includes('ready'), 10_000, 'the reader to start')
  const writer = spawnFixture(t, 'writer-loop.js', [file, writes, 1_000, 60_000])
  const w = await exitOf(writer, 120_000, 'the writer')
  assert.equal(w.code, 0, writer.stderrText)
  const r = await exitOf(reader, 60_000, 'the reader')
  const summary = JSON.parse(reader.lines.at(-1))
  assert.equal(r.code, 0, `reader found ${summary.torn}`)
  assert.ok(summary.checked > 100, `the reader checked only ${summary.checked} values`)
  assert.ok(summary.distinct > 10, `the reader saw only ${summary.distinct} distinct values`)
})

test('a writer killed mid-loop: the value stays whole and another writer takes over', async (t) => {
  const { file, obj } = segment(t, { size: 70_000 })
  let diedMidWrite = 0
  for (let round = 0; round < 10; round++) {
    const writer = spawnFixture(t, 'writer-loop.js', [file, 'forever', 10_000, 60_000], {
      env: { ...process.env, SEQ_START: String(round * 1_000_000) },
    })
    await waitFor(() => writer.lines.includes('ready'), 10_000, 'the writer to start')
    const from = obj.version
    await waitFor(() => obj.version > from + 20, 10_000, 'the writer to make progress')
    writer.kill('SIGKILL')
    await exitOf(writer, 10_000)
    if (fillsInProgress(file) > 0) diedMidWrite++
    // The last commit is whole whenever the writer died: never garbage, never an error.
    assert.ok(check(obj.read()) >= round * 1_000_000, 'a value of the killed writer')
    const next = SharedObject.open(file)
    next.write(`round ${round}`)
    next.close()
    assert.equal(obj.read(), `round ${round}`)
  }
  t.diagnostic(`writers killed mid-write: ${diedMidWrite} of 10`)
})
