'use strict'
// Round-trip peer for the in-process reference: a worker thread that waits with
// Atomics.wait on slot PING of a SharedArrayBuffer, copies the number to slot PONG and
// Atomics.notify()s the main thread. No strings, no files, no second process: the floor of
// what a futex-based wake-up costs in Node. A value of STOP (-1) ends it; so does idling
// for IDLE_LIMIT_MS.

const { workerData } = require('node:worker_threads')

const PING = 0
const PONG = 1
const STOP = -1
const WAIT_MS = 1_000
const IDLE_LIMIT_MS = 120_000

function main() {
  const slots = new Int32Array(workerData.sab)
  let last = Atomics.load(slots, PING)
  let idle = 0
  for (;;) {
    if (Atomics.wait(slots, PING, last, WAIT_MS) === 'timed-out') {
      idle += WAIT_MS
      if (idle >= IDLE_LIMIT_MS) throw new Error(`no message for ${idle} ms`)
      continue
    }
    idle = 0
    const value = Atomics.load(slots, PING)
    if (value === last) continue
    if (value === STOP) return
    last = value
    Atomics.store(slots, PONG, value)
    Atomics.notify(slots, PONG)
  }
}

main()
