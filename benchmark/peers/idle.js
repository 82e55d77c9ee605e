'use strict'
// An idle-limit watchdog for event-loop peers: their waits carry no per-call timeout (that
// would add a timer per message, which the socket and IPC peers do not pay), so instead
// the peer exits with an error if no message arrives for IDLE_LIMIT_MS. Call the returned
// `seen()` on every message: it only bumps a counter.

const { fail } = require('./common.js')

const IDLE_LIMIT_MS = 120_000
const CHECK_MS = 5_000

function idleWatchdog(limitMs = IDLE_LIMIT_MS) {
  let messages = 0
  let lastCount = 0
  let idleMs = 0
  setInterval(() => {
    idleMs = messages === lastCount ? idleMs + CHECK_MS : 0
    lastCount = messages
    if (idleMs >= limitMs) fail(new Error(`no message for ${idleMs} ms`))
  }, CHECK_MS).unref()
  return () => {
    messages++
  }
}

module.exports = { idleWatchdog }
