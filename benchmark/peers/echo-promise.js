'use strict'
// Round-trip peer for share-object's promise wait: `await ping.waitForChange(since)`, read
// the value, write it back to pong. node echo-promise.js <ping path> <pong path>
// Ends when stdin closes, the parent disappears, or "stop" is written to ping.

const { shareObject, print, fail, exitWithParent } = require('./common.js')
const { idleWatchdog } = require('./idle.js')

const STOP = 'stop'

async function main() {
  const [pingPath, pongPath] = process.argv.slice(2)
  const ping = shareObject.SharedObject.open(pingPath)
  const pong = shareObject.SharedObject.open(pongPath)
  exitWithParent()
  const seen = idleWatchdog()
  let since = ping.version
  print({ ready: true })
  for (;;) {
    since = await ping.waitForChange(since)
    seen()
    const message = ping.read()
    if (message === STOP) break
    pong.write(message)
  }
  process.exit(0)
}

main().catch(fail)
