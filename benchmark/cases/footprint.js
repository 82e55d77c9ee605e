'use strict'
// Case 4: memory and mapping footprint, each measured in a fresh child process (so the
// benchmark's own heap does not blur it) started with --expose-gc (every snapshot follows
// a full GC):
// - 100 open segments: RSS, /proc/self/maps lines and open fds before and after opening
//   them (see peers/footprint-segments.js).
// - 1,000,000 calls: 500k write() + 500k read() alternating (every read follows a change,
//   so none is a cache hit); maps lines and RSS before and after, with checkpoints every
//   tenth (see peers/footprint-calls.js), in a child whose V8 young generation has a fixed
//   size. Targets: maps lines flat, RSS growth < 10 MiB.
// - open/close churn (informational, no target): open() + read() + close() in one
//   synchronous loop, maps lines right after and once the event loop has turned (see
//   peers/footprint-churn.js).

const path = require('node:path')
const { spawnPeer } = require('../harness/peer.js')

const SEGMENTS = 100
const CHURN_CYCLES = 2_000
// V8 flags for the calls child: a young generation of fixed size (MiB per semi-space), so
// V8 resizing it does not add or drop mappings mid-run (see peers/footprint-calls.js).
const FIXED_YOUNG_GENERATION = ['--min-semi-space-size=8', '--max-semi-space-size=8']

async function run(ctx) {
  const calls = ctx.quick ? 100_000 : 1_000_000
  const segments = await inChild('footprint-segments', [ctx.dir, SEGMENTS], 60_000)
  const many = await inChild('footprint-calls', [path.join(ctx.dir, 'footprint-calls'), calls], 120_000, FIXED_YOUNG_GENERATION)
  const churn = await inChild('footprint-churn', [ctx.dir, ctx.quick ? CHURN_CYCLES / 10 : CHURN_CYCLES], 60_000)
  return { id: 'footprint', segments, calls: many, churn, quickCalls: ctx.quick }
}

// Runs a footprint peer to completion and returns its result line.
async function inChild(name, args, ms, nodeArgs = []) {
  const peer = spawnPeer(name, args, { nodeArgs: ['--expose-gc', ...nodeArgs] })
  try {
    return await peer.message((m) => m.before !== undefined, ms, 'result')
  } finally {
    await peer.stop()
  }
}

module.exports = { run }
