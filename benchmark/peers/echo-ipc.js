'use strict'
// Round-trip peer for child_process IPC: every message from the parent (process.send) is
// sent straight back. Spawned with an 'ipc' stdio channel. Ends when stdin closes, the IPC
// channel closes, or the parent disappears.

const { print, fail, exitWithParent } = require('./common.js')
const { idleWatchdog } = require('./idle.js')

function main() {
  if (typeof process.send !== 'function') throw new Error('echo-ipc.js needs an IPC channel')
  const seen = idleWatchdog()
  process.on('message', (message) => {
    seen()
    process.send(message)
  })
  process.on('disconnect', () => process.exit(0))
  exitWithParent()
  print({ ready: true })
}

try {
  main()
} catch (err) {
  fail(err)
}
