'use strict'
// Round-trip peer for Channel#recv (the promise receive): `await ping.recv()` on the "ping"
// channel (parent → child; this peer is its consumer), then send() the message back
// unchanged on the "pong" channel (child → parent). node echo-channel-recv.js <ping path> <pong path>
// Both channels are created by the parent. Ends when stdin closes, the parent disappears,
// or the message "stop" arrives.

const { shareObject, print, fail, exitWithParent } = require('./common.js')
const { idleWatchdog } = require('./idle.js')

const STOP = Buffer.from('stop')

async function main() {
  const [pingPath, pongPath] = process.argv.slice(2)
  const ping = shareObject.Channel.open(pingPath, { create: false })
  const pong = shareObject.Channel.open(pongPath, { create: false })
  ping.receive() // the first receive makes this handle ping's consumer
  exitWithParent()
  const seen = idleWatchdog()
  print({ ready: true })
  for (;;) {
    const message = await ping.recv()
    seen()
    if (message.equals(STOP)) break
    if (!pong.send(message)) throw new Error('the pong channel is full: the parent stopped reading')
  }
  process.exit(0)
}

main().catch(fail)
