'use strict'
// Round-trip peer for Channel#receiveSync: blocks in receiveSync on the "ping" channel
// (parent → child; this peer is its consumer) and sends every message back unchanged with
// send() on the "pong" channel (child → parent). node echo-channel-sync.js <ping path> <pong path>
// Both channels are created by the parent. Its event loop is blocked while it waits, so it
// cannot see stdin close: each wait has a 1 s timeout after which it checks whether the
// parent is gone or it has idled too long. The message "stop" ends it.

const { shareObject, print, fail, orphaned } = require('./common.js')

const WAIT_MS = 1_000
const IDLE_LIMIT_MS = 120_000
const STOP = Buffer.from('stop')

function main() {
  const [pingPath, pongPath] = process.argv.slice(2)
  const ping = shareObject.Channel.open(pingPath, { create: false })
  const pong = shareObject.Channel.open(pongPath, { create: false })
  ping.receive() // the first receive makes this handle ping's consumer
  let idle = 0
  print({ ready: true })
  for (;;) {
    const message = ping.receiveSync(WAIT_MS)
    if (message === null) {
      idle += WAIT_MS
      if (orphaned() || idle >= IDLE_LIMIT_MS) break
      continue
    }
    idle = 0
    if (message.equals(STOP)) break
    if (!pong.send(message)) throw new Error('the pong channel is full: the parent stopped reading')
  }
  ping.close()
  pong.close()
}

try {
  main()
} catch (err) {
  fail(err)
}
