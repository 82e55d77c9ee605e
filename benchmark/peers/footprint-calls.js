'use strict'
// Footprint of many calls: alternates write() and read() on one segment (two alternating
// 1 KiB values, so every read() follows a change and takes the native path) and snapshots
// RSS / V8 heap / maps lines / fds (after a full GC) at the start, after a warm-up (the
// JIT settles), and at every tenth of the measured calls. Prints one JSON line.
// node --expose-gc --min-semi-space-size=8 --max-semi-space-size=8 footprint-calls.js <segment path> <calls>
//
// Why the fixed semi-space size (set by cases/footprint.js): by default V8 resizes its
// young generation with the allocation rate, adding or dropping 256 KiB anonymous mappings
// (and ~2 MiB of RSS) at moments of its choosing, which a maps-line count cannot tell from
// a leak. With a fixed young generation, any change left is share-object's or a real JS
// heap growth (old space, which heapTotal shows).

const path = require('node:path')
const { shareObject, print, fail } = require('./common.js')
const { snapshot } = require('./snapshot.js')

const CHECKPOINTS = 10
const WARMUP_CALLS = 200_000

function main() {
  const [file, callsArg] = process.argv.slice(2)
  const calls = Number(callsArg)
  const dir = path.dirname(file)
  const segment = shareObject.SharedObject.open(file, { size: 4096 })
  const base = 'x'.repeat(1023)
  const values = [`${base}A`, `${base}B`]
  const pairs = (n) => {
    for (let i = 0; i < n; i++) {
      segment.write(values[i & 1])
      if (segment.read().length !== 1024) throw new Error('read() returned a wrong value')
    }
  }
  const warmupCalls = Math.min(calls, WARMUP_CALLS)
  const start = snapshot(dir)
  pairs(warmupCalls / 2)
  const before = snapshot(dir)
  const checkpoints = []
  const perCheckpoint = Math.floor(calls / 2 / CHECKPOINTS)
  for (let c = 0; c < CHECKPOINTS; c++) {
    pairs(perCheckpoint)
    checkpoints.push({ calls: (c + 1) * perCheckpoint * 2, ...snapshot(dir) })
  }
  segment.close()
  const after = checkpoints[checkpoints.length - 1]
  print({ calls: after.calls, warmupCalls, start, before, after, checkpoints })
}

try {
  main()
} catch (err) {
  fail(err)
}
