'use strict'
// Value segments of format 2 (src/value/DESIGN.md) under a busy writer, with real
// processes: readers of large values finish their reads whatever the writer does, read-only
// readers too, and readers killed in the middle of a read leave nothing behind that slows
// the writer. Kills of writers mid-write are in reliability.test.js.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { SharedObject } = require('..')
const { tempDir, spawnFixture, waitFor, exitOf } = require('./helpers.js')
const { HEAD } = require('./fixtures/rel-common.js')

const FOUR_MIB = 4 << 20
// The first pin byte of a value segment (PIN_BASE in src/segment/layout.rs): 2^40 + 64.
const PIN_BASE = 2 ** 40 + 64

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const jsonLines = (child) => child.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
const progressOf = (child) => jsonLines(child).filter((m) => m.progress !== undefined).at(-1)?.progress ?? 0

function printed(child, line, ms, what) {
  return waitFor(() => child.lines.includes(line), ms, `${what} to print ${JSON.stringify(line)}; stderr: ${child.stderrText}`)
}

/** A writer process rewriting the segment with checked values of `bytes` bytes, for ever. */
async function busyWriter(t, file, bytes) {
  const writer = spawnFixture(t, 'rel-writer.js', [file, 1, 'forever', bytes - HEAD, bytes - HEAD])
  await printed(writer, 'ready', 30_000, 'the writer')
  return writer
}

/** The OFD locks on `file`'s pin bytes, from /proc/locks (Linux). */
function pinLocks(file) {
  const ino = fs.statSync(file).ino
  return fs
    .readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === 'OFDLCK' && Number(f[5]?.split(':')[2]) === ino && Number(f[6]) >= PIN_BASE && Number(f[6]) < PIN_BASE + 3)
}

test('a reader in a tight loop under a writer rewriting 4 MiB values completes its reads, every one whole; so does a read-only reader', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  const stop = path.join(dir, 'stop')
  const obj = SharedObject.open(file, { size: FOUR_MIB })
  t.after(() => obj.close())
  const writer = await busyWriter(t, file, FOUR_MIB)
  const readers = ['readWrite', 'readOnly'].map((mode) => spawnFixture(t, 'rel-reader.js', [file, stop, 'until-stop', mode]))
  for (const r of readers) await printed(r, 'ready', 30_000, 'a reader')
  const v0 = obj.version
  // Each reader finishes at least 50 whole reads while the writer goes on (a reader
  // starved by the writer would stop here and fail the wait).
  for (const [i, r] of readers.entries()) await waitFor(() => progressOf(r) >= 50 || r.exitCode !== null, 120_000, `reader ${i} to complete 50 reads`)
  fs.writeFileSync(stop, '')
  const summaries = []
  for (const r of readers) {
    const { code } = await exitOf(r, 60_000, 'a reader')
    assert.equal(code, 0, `${r.lines.at(-1)} ${r.stderrText}`)
    summaries.push(jsonLines(r).at(-1))
  }
  const writes = obj.version - v0
  writer.kill('SIGKILL')
  for (const s of summaries) {
    assert.ok(s.reads >= 50, JSON.stringify(s))
    assert.equal(s.whole, s.reads, 'every read was a whole, checked value')
  }
  assert.ok(writes > 0, 'the writer kept writing while the readers read')
  t.diagnostic(`reads of 4 MiB values: read-write reader ${summaries[0].reads}, read-only reader ${summaries[1].reads}; writes meanwhile: ${writes}`)
})

test('readers SIGKILLed in the middle of reading 4 MiB values leave no pin behind, and the writer goes on', { skip: process.platform !== 'linux' && 'reads /proc/locks' }, async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  const obj = SharedObject.open(file, { size: FOUR_MIB })
  t.after(() => obj.close())
  const writer = await busyWriter(t, file, FOUR_MIB)
  let pinnedAtKill = 0
  for (let round = 0; round < 12; round++) {
    const readers = [0, 1, 2].map(() => spawnFixture(t, 'tight-reader.js', [file]))
    for (const r of readers) await waitFor(() => progressOf(r) > 0, 30_000, 'a reader to read')
    await sleep(Math.floor(Math.random() * 30))
    // Kill the moment a reader is seen pinned (mid-copy), or after 2 s whatever they do.
    const until = Date.now() + 2000
    let pins = 0
    while ((pins = pinLocks(file).length) === 0 && Date.now() < until) await new Promise(setImmediate)
    for (const r of readers) r.kill('SIGKILL')
    pinnedAtKill += pins
    for (const r of readers) await exitOf(r, 10_000, 'a reader to die')
    assert.deepEqual(pinLocks(file), [], `round ${round}: a dead reader's pin is still held`)
  }
  // The writer is not held back by anything the readers left: it goes on committing.
  const v = obj.version
  await waitFor(() => obj.version >= v + 20, 60_000, 'the writer to commit 20 more values')
  writer.kill('SIGKILL')
  t.diagnostic(`pins held when the readers were killed: ${pinnedAtKill} over 12 rounds of 3 readers`)
  assert.ok(pinnedAtKill > 0, 'no reader was ever killed while pinned: the test did not exercise that case')
})

test('a value committed before a writer was killed survives it, for values small and large (version counts commits)', async (t) => {
  const dir = tempDir(t)
  for (const bytes of [1 << 10, 1 << 20]) {
    const file = path.join(dir, `seg-${bytes}`)
    const obj = SharedObject.open(file, { size: bytes })
    t.after(() => obj.close())
    const writer = await busyWriter(t, file, bytes)
    await waitFor(() => obj.version >= 10, 30_000, 'some commits')
    writer.kill('SIGKILL')
    await exitOf(writer, 10_000, 'the writer to die')
    const version = obj.version
    const value = obj.readBuffer()
    assert.equal(value.length, bytes, 'the last commit, whole')
    // Another process reads the same commit.
    const again = SharedObject.open(file)
    assert.deepEqual([again.version, again.readBuffer().equals(value)], [version, true])
    again.close()
    assert.equal(obj.write('next'), 4)
    assert.equal(obj.version, version + 1)
  }
})
