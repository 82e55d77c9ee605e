'use strict'
// Footprint of holding many open segments: opens <count> segments (1 KiB each, one value
// written to each) in <dir> and prints a snapshot (RSS, maps lines, fds) before and after,
// as one JSON line. Run with --expose-gc so both snapshots follow a full GC.
// node --expose-gc footprint-segments.js <dir> <count>

const path = require('node:path')
const { shareObject, print, fail } = require('./common.js')
const { snapshot } = require('./snapshot.js')

function main() {
  const [dir, countArg] = process.argv.slice(2)
  const count = Number(countArg)
  // Warm the module and its code paths on one extra segment, so "before" is not the cost
  // of loading the addon but of the segments themselves.
  const warm = shareObject.SharedObject.open(path.join(dir, 'warm'))
  warm.write('warm')
  warm.read()
  warm.close()
  const before = snapshot(dir)
  const segments = []
  for (let i = 0; i < count; i++) {
    const segment = shareObject.SharedObject.open(path.join(dir, `segment-${i}`), { size: 1024 })
    segment.write(`value ${i}`)
    segment.read()
    segments.push(segment)
  }
  const after = snapshot(dir)
  for (const segment of segments) segment.close()
  const closed = snapshot(dir)
  print({ count, before, after, closed })
}

try {
  main()
} catch (err) {
  fail(err)
}
