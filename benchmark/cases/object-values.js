'use strict'
// Case 1c: an object as the value (issue #13), in one process: SharedObject's default codec
// (write(object) stores JSON with a type tag; read() parses it) against what a user does
// without it: JSON.stringify + fs.writeFileSync, fs.readFileSync + JSON.parse of a file in
// the same temp folder. Measured as case 1 (cases/latest-value.js) measures strings: ns per
// call from batches, rounds interleaving the operations, medians and p99 over the rounds.
//
// - write(object): SharedObject#write of a ~1 KiB plain object (two alternating objects).
// - read() after every change: [A.write(o); B.read()] − [A.write(o)] on two handles of one
//   segment: the native copy plus JSON.parse.
// - read() unchanged: the cached JSON text parsed again (read() hands out a fresh object
//   every time, so a cache hit still costs a JSON.parse).

const fs = require('node:fs')
const path = require('node:path')
const { SharedObject } = require('../..')
const { calibrate, timeBatch } = require('../harness/batch.js')
const { summarize } = require('../harness/stats.js')

/** Two ~1 KiB plain objects that differ, so every write changes the value. */
function objects() {
  const make = (tag) => ({
    id: 12345,
    status: 'ok',
    tag,
    items: Array.from({ length: 24 }, (_, i) => ({ n: i, name: `item-${i}`, ok: i % 2 === 0 })),
  })
  return [make('A'), make('B')]
}

function operations(dir) {
  const file = path.join(dir, 'bridge.json')
  const segment = path.join(dir, 'object-value')
  const a = SharedObject.open(segment, { size: 8192 })
  const b = SharedObject.open(segment)
  const v = objects()
  let sink = 0
  a.write(v[0])
  fs.writeFileSync(file, JSON.stringify(v[0]))
  const ops = {
    soWrite: (n) => {
      for (let i = 0; i < n; i++) sink += a.write(v[i & 1])
    },
    soWriteRead: (n) => {
      for (let i = 0; i < n; i++) {
        sink += a.write(v[i & 1])
        sink += b.read().items.length
      }
    },
    soReadCached: (n) => {
      for (let i = 0; i < n; i++) sink += b.read().items.length
    },
    fsWrite: (n) => {
      for (let i = 0; i < n; i++) fs.writeFileSync(file, JSON.stringify(v[i & 1]))
    },
    fsRead: (n) => {
      for (let i = 0; i < n; i++) sink += JSON.parse(fs.readFileSync(file, 'utf8')).items.length
    },
  }
  const close = () => {
    a.close()
    b.close()
    if (sink === -1) console.log(sink)
  }
  return { ops, close, prime: () => b.read(), bytes: Buffer.byteLength(JSON.stringify(v[0])) }
}

async function run(ctx) {
  const { rounds, targetMs } = ctx.quick ? { rounds: 5, targetMs: 2 } : { rounds: 40, targetMs: 12 }
  const { ops, close, prime, bytes } = operations(ctx.dir)
  try {
    const sizes = {}
    for (const id of ['fsWrite', 'fsRead', 'soReadCached', 'soWriteRead']) sizes[id] = calibrate(ops[id], targetMs)
    sizes.soWrite = sizes.soWriteRead
    const samples = { soWrite: [], soWriteRead: [], soReadCached: [], fsWrite: [], fsRead: [], soReadUncached: [] }
    const order = Object.keys(sizes)
    for (let round = 0; round < rounds; round++) {
      const ns = {}
      for (const id of order.map((_, i) => order[(i + round) % order.length])) {
        if (id === 'soReadCached') prime()
        ns[id] = timeBatch(ops[id], sizes[id])
        samples[id].push(ns[id])
      }
      samples.soReadUncached.push(ns.soWriteRead - ns.soWrite)
      await new Promise(setImmediate)
    }
    const s = Object.fromEntries(Object.entries(samples).map(([id, xs]) => [id, summarize(xs)]))
    const row = (id, label, so, fsId, fsLabel) => ({ id, label, shareObject: s[so], alternative: { label: fsLabel, ns: s[fsId] }, ratio: s[fsId].median / s[so].median })
    return {
      id: 'object-values',
      unit: 'ns',
      valueBytes: bytes,
      rounds,
      rows: [
        row('object-read-cached', 'read(), value unchanged (JSON.parse of the cached text)', 'soReadCached', 'fsRead', 'readFileSync + JSON.parse'),
        row('object-read-uncached', 'read() after every change (native copy + JSON.parse)', 'soReadUncached', 'fsRead', 'readFileSync + JSON.parse'),
        row('object-write', 'write(object)', 'soWrite', 'fsWrite', 'JSON.stringify + writeFileSync'),
      ],
    }
  } finally {
    close()
  }
}

module.exports = { run }
