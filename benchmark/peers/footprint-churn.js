'use strict'
// Footprint of opening and closing: <cycles> times open() + read() + close() of one segment
// in a single synchronous loop, then a snapshot (after a full GC) right away and another
// after the event loop has turned a few times. Shows whether close() releases a handle's
// mapping at once or only once its JS objects are collected. Prints one JSON line.
// node --expose-gc footprint-churn.js <dir> <cycles>

const path = require('node:path')
const { shareObject, print, fail } = require('./common.js')
const { snapshot } = require('./snapshot.js')

const SETTLE_MS = 100

async function main() {
  const [dir, cyclesArg] = process.argv.slice(2)
  const cycles = Number(cyclesArg)
  const file = path.join(dir, 'churn')
  shareObject.SharedObject.open(file, { size: 1024 }).close()
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
  const before = snapshot(dir)
  const started = process.hrtime.bigint()
  for (let i = 0; i < cycles; i++) {
    const segment = shareObject.SharedObject.open(file)
    segment.read()
    segment.close()
  }
  const loopNs = Number(process.hrtime.bigint() - started)
  const sameTick = snapshot(dir)
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
  snapshot(dir) // collect, then let the finalizers that GC queued run
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
  const settled = snapshot(dir)
  print({ cycles, before, sameTick, settled, nsPerCycle: loopNs / cycles })
}

main().catch(fail)
