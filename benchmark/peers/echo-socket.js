'use strict'
// Round-trip peer for a Unix domain socket: listens on the given path and echoes every
// chunk back as it arrives. node echo-socket.js <socket path>
// Ends when stdin closes or the parent disappears.

const net = require('node:net')
const { print, fail, exitWithParent } = require('./common.js')
const { idleWatchdog } = require('./idle.js')

function main() {
  const [socketPath] = process.argv.slice(2)
  const seen = idleWatchdog()
  const server = net.createServer((socket) => {
    socket.on('data', (chunk) => {
      seen()
      socket.write(chunk)
    })
    socket.on('error', fail)
  })
  server.on('error', fail)
  exitWithParent(() => server.close())
  server.listen(socketPath, () => print({ ready: true }))
}

try {
  main()
} catch (err) {
  fail(err)
}
