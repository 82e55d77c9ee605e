'use strict'
// Case 1: the latest value, a 1 KiB string, in one process: share-object read()/write()
// against the naive "file as bridge" (fs.readFileSync / fs.writeFileSync of a file in the
// same temp folder). Times are ns per call from batches (see harness/batch.js); every
// operation is measured once per round, rounds interleave the operations, and the median
// and p99 are over the rounds' batch means. Ratio = fs median ÷ share-object median.
//
// What each number means:
// - write(): SharedObject#write of a 1 KiB string, alternating two values. fs.writeFileSync
//   truncates and rewrites the file (no fsync; readers can see it half-written).
// - read(), value unchanged: read() while nobody writes. share-object returns its cached
//   string after one atomic load of the version, no native call (the cache-hit path).
// - read() after every change: the version changed before every read, so read() copies
//   the value out of the mapping and decodes it (the native path). It is measured as
//   [loop of A.write(v); B.read()] minus [loop of A.write(v)] over two handles A and B on
//   the same segment, same batch size, in the same round; the p99 is that of the per-round
//   differences, so it is noisier than the others.
// - fs.readFileSync(file, 'utf8') has no cache: it is the same open/read/close/decode
//   whether or not the file changed, so it is the comparison for both read() rows.

const fs = require('node:fs')
const path = require('node:path')
const { SharedObject } = require('../..')
const { calibrate, timeBatch } = require('../harness/batch.js')
const { summarize } = require('../harness/stats.js')

const VALUE_BYTES = 1024

/** Two different 1 KiB ASCII strings, so every write really changes the value. */
function values() {
  const line = 'latest value {"id":12345,"status":"ok","items":[1,2,3]} '
  const base = line.repeat(Math.ceil(VALUE_BYTES / line.length)).slice(0, VALUE_BYTES - 1)
  return [`${base}A`, `${base}B`]
}

// Each operation's batch: `n` calls. `sink` keeps results alive so nothing is optimised away.
function operations(dir) {
  const file = path.join(dir, 'bridge.txt')
  const segment = path.join(dir, 'latest-value')
  const a = SharedObject.open(segment, { size: 4 * VALUE_BYTES })
  const b = SharedObject.open(segment)
  const v = values()
  let sink = 0
  a.write(v[0])
  fs.writeFileSync(file, v[0])
  const ops = {
    soWrite: (n) => {
      for (let i = 0; i < n; i++) sink += a.write(v[i & 1])
    },
    soWriteRead: (n) => {
      for (let i = 0; i < n; i++) {
        sink += a.write(v[i & 1])
        sink += b.read().length
      }
    },
    soReadCached: (n) => {
      for (let i = 0; i < n; i++) sink += b.read().length
    },
    fsWrite: (n) => {
      for (let i = 0; i < n; i++) fs.writeFileSync(file, v[i & 1])
    },
    fsRead: (n) => {
      for (let i = 0; i < n; i++) sink += fs.readFileSync(file, 'utf8').length
    },
  }
  const close = () => {
    a.close()
    b.close()
    if (sink === -1) console.log(sink)
  }
  return { ops, close, prime: () => b.read() }
}

/** Measures every operation in interleaved rounds; returns the section for the report. */
async function run(ctx) {
  const { rounds, targetMs } = ctx.quick ? { rounds: 5, targetMs: 2 } : { rounds: 60, targetMs: 12 }
  const { ops, close, prime } = operations(ctx.dir)
  try {
    const sizes = calibrateAll(ops, targetMs)
    const samples = { soWrite: [], soWriteRead: [], soReadCached: [], fsWrite: [], fsRead: [], soReadUncached: [] }
    const order = Object.keys(sizes)
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so no operation always follows the same one.
      const rotated = order.map((_, i) => order[(i + round) % order.length])
      const ns = {}
      for (const id of rotated) {
        if (id === 'soReadCached') prime()
        ns[id] = timeBatch(ops[id], sizes[id])
        samples[id].push(ns[id])
      }
      samples.soReadUncached.push(ns.soWriteRead - ns.soWrite)
      await new Promise(setImmediate) // let the event loop run between rounds (signals, I/O)
    }
    return report(samples, sizes)
  } finally {
    close()
  }
}

// Batch sizes; write and write+read share one, so their difference is per read.
function calibrateAll(ops, targetMs) {
  const sizes = {}
  for (const id of ['fsWrite', 'fsRead', 'soReadCached', 'soWriteRead']) sizes[id] = calibrate(ops[id], targetMs)
  sizes.soWrite = sizes.soWriteRead
  return sizes
}

function report(samples, sizes) {
  const s = Object.fromEntries(Object.entries(samples).map(([id, xs]) => [id, summarize(xs)]))
  const row = (id, label, so, fsId, fsLabel) => ({
    id,
    label,
    shareObject: s[so],
    alternative: { label: fsLabel, ns: s[fsId] },
    ratio: s[fsId].median / s[so].median,
    batch: sizes[so === 'soReadUncached' ? 'soWriteRead' : so],
  })
  return {
    id: 'latest-value',
    unit: 'ns',
    valueBytes: VALUE_BYTES,
    rows: [
      row('read-cached', 'read(), value unchanged (cache hit)', 'soReadCached', 'fsRead', 'fs.readFileSync'),
      row('read-uncached', 'read() after every change (native copy)', 'soReadUncached', 'fsRead', 'fs.readFileSync'),
      row('write', 'write()', 'soWrite', 'fsWrite', 'fs.writeFileSync'),
    ],
    raw: { writeReadNs: s.soWriteRead },
  }
}

module.exports = { run, values, VALUE_BYTES }
