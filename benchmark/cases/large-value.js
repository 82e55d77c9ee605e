'use strict'
// Case 1b: a 4 MiB value under a writer that rewrites it in a loop (issue #13). One writer
// process (peers/value-writer.js) rewrites a segment with 4 MiB values as fast as it can;
// the parent reads with readBuffer() and times every read on its own.
//
// What each number means:
// - read p99 under the writer: readBuffer() of segment A while the writer rewrites A.
// - read p99 uncontended: readBuffer() of segment A (holding a 4 MiB value nobody
//   rewrites) while the same writer rewrites segment B, so that the machine is as busy.
//   Ratio = contended p99 ÷ uncontended p99 (target ≤ 5×): a reader a writer could starve
//   (retrying its copy for as long as writes overlap it) shows here.
// - writer rate alone / with a reader: commits per second of the writer on A while the
//   parent sleeps, and while the parent reads A in a loop. Ratio = alone ÷ with a reader
//   (target ≤ 2×). One reader: on a 2-core machine a second reader process would measure
//   the cores being shared, not the protocol. Shown beside it, not a target: the writer's
//   rate while the parent reads segment B in a loop (as busy a machine, no reader of A),
//   which tells the share of the drop that is the cores and memory being shared.
// Rounds interleave the three phases, each `phaseMs` long; medians and p99 are over every
// read of a kind across the rounds, rates are the median of the rounds'.

const path = require('node:path')
const { SharedObject } = require('../..')
const { spawnPeer } = require('../harness/peer.js')
const { summarize, median } = require('../harness/stats.js')

const VALUE_BYTES = 4 << 20

async function run(ctx) {
  const { rounds, phaseMs } = ctx.quick ? { rounds: 2, phaseMs: 100 } : { rounds: 8, phaseMs: 600 }
  const pathA = path.join(ctx.dir, 'large-a')
  const pathB = path.join(ctx.dir, 'large-b')
  const a = SharedObject.open(pathA, { size: VALUE_BYTES })
  const b = SharedObject.open(pathB, { size: VALUE_BYTES })
  a.write(Buffer.alloc(VALUE_BYTES, 0x7a))
  const writer = spawnPeer('value-writer', [pathA, pathB, VALUE_BYTES])
  let n = 0
  const switchTo = async (target) => {
    const id = ++n
    writer.child.stdin.write(JSON.stringify({ target, n: id }) + '\n')
    await writer.message((m) => m.switched === id, 30_000, `the switch to ${target}`)
  }
  try {
    await writer.ready(30_000)
    const contended = []
    const uncontended = []
    const alone = []
    const withReader = []
    const besideReader = []
    for (let round = 0; round < rounds; round++) {
      await switchTo('A')
      // The writer alone: the parent sleeps.
      let v0 = a.version
      let t0 = process.hrtime.bigint()
      await new Promise((resolve) => setTimeout(resolve, phaseMs))
      alone.push(rate(a.version - v0, t0))
      // The writer with a reader of the same segment.
      v0 = a.version
      t0 = process.hrtime.bigint()
      readFor(a, phaseMs, contended)
      withReader.push(rate(a.version - v0, t0))
      // The same writer on the other segment; the parent reads the quiet one.
      await switchTo('B')
      a.readBuffer() // the first read after the writer left maps nothing new
      readFor(a, phaseMs, uncontended)
      // The writer on A again, the parent reading B: a machine as busy, no reader of A.
      await switchTo('A')
      b.readBuffer()
      v0 = a.version
      t0 = process.hrtime.bigint()
      readFor(b, phaseMs, [])
      besideReader.push(rate(a.version - v0, t0))
      await new Promise(setImmediate) // let the event loop run between rounds
    }
    await switchTo(null)
    const s = { contended: summarize(contended), uncontended: summarize(uncontended) }
    const med = (xs) => median(Float64Array.from(xs).sort())
    const rates = { alone: med(alone), withReader: med(withReader), besideReader: med(besideReader) }
    return {
      id: 'large-value',
      valueBytes: VALUE_BYTES,
      rounds,
      phaseMs,
      reads: s,
      rates,
      readers: 1,
      rows: [
        { id: 'large-read-p99', label: 'readBuffer() p99: under the writer ÷ uncontended', ratio: s.contended.p99 / s.uncontended.p99 },
        { id: 'large-writer-rate', label: 'writer commits/s: alone ÷ with a reader', ratio: rates.alone / rates.withReader },
      ],
    }
  } finally {
    await writer.stop()
    a.close()
    b.close()
  }
}

/** Commits per second since `t0` (hrtime). */
function rate(commits, t0) {
  return commits / (Number(process.hrtime.bigint() - t0) / 1e9)
}

/** Reads `obj` in a loop for `ms`, pushing each read's duration (ns) to `out`. */
function readFor(obj, ms, out) {
  const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n
  let sink = 0
  for (;;) {
    const t0 = process.hrtime.bigint()
    sink += obj.readBuffer().length
    const t1 = process.hrtime.bigint()
    out.push(Number(t1 - t0))
    if (t1 >= end) break
  }
  if (sink === -1) console.log(sink)
}

module.exports = { run }
