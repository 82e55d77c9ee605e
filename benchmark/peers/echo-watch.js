'use strict'
// Round-trip peer for share-object's watch(): every change of ping is written back to pong
// from the listener. node echo-watch.js <ping path> <pong path>
// Ends when stdin closes, the parent disappears, or "stop" is written to ping.

const { shareObject, print, fail, exitWithParent } = require('./common.js')
const { idleWatchdog } = require('./idle.js')

const STOP = 'stop'

function main() {
  const [pingPath, pongPath] = process.argv.slice(2)
  const ping = shareObject.SharedObject.open(pingPath)
  const pong = shareObject.SharedObject.open(pongPath)
  exitWithParent()
  const seen = idleWatchdog()
  ping.watch((message) => {
    seen()
    if (message === STOP) process.exit(0)
    pong.write(message)
  })
  print({ ready: true })
}

try {
  main()
} catch (err) {
  fail(err)
}
