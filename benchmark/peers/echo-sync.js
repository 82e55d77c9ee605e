'use strict'
// Round-trip peer for share-object's blocking wait: waits on the "ping" segment with
// waitForChangeSync, reads the value and writes it back to the "pong" segment.
// node echo-sync.js <ping path> <pong path>
// Its event loop is blocked while it waits, so it cannot see stdin close: each wait has a
// 1 s timeout after which it checks whether the parent is gone or it has idled too long.
// Writing "stop" to ping ends it.

const { shareObject, print, fail, orphaned } = require('./common.js')

const WAIT_MS = 1_000
const IDLE_LIMIT_MS = 120_000
const STOP = 'stop'

function main() {
  const [pingPath, pongPath] = process.argv.slice(2)
  const ping = shareObject.SharedObject.open(pingPath)
  const pong = shareObject.SharedObject.open(pongPath)
  let since = ping.version
  let idle = 0
  print({ ready: true })
  for (;;) {
    let version
    try {
      version = ping.waitForChangeSync(since, WAIT_MS)
    } catch (err) {
      if (err.code !== 'ERR_TIMEOUT') throw err
      idle += WAIT_MS
      if (orphaned() || idle >= IDLE_LIMIT_MS) break
      continue
    }
    idle = 0
    since = version
    const message = ping.read()
    if (message === STOP) break
    pong.write(message)
  }
  ping.close()
  pong.close()
}

try {
  main()
} catch (err) {
  fail(err)
}
