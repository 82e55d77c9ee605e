'use strict'
// The Unix-socket hub of the SharedMap case (cases/shared-map.js): what cluster users write
// by hand when they want one cache for all their workers without Redis. One process holds
// a Map per socket and answers get/set requests, one line each:
//
//   "g <key>\n"          → "v <value>\n", or "u\n" when the key has no value
//   "s <key> <value>\n"  → "k\n"
//
// Values are strings without a newline (the case's JSON documents; a client with objects
// JSON.stringify()s them before the request and JSON.parse()s the answer). Clients send a
// request and wait for its answer before the next one.
// node map-hub.js <socket path> [<socket path> …]   (one Map per socket)
// Prints {"ready":true} once every socket listens; ends when stdin closes or the parent
// disappears.

const net = require('node:net')
const { print, fail, exitWithParent } = require('./common.js')
const { idleWatchdog } = require('./idle.js')

function serve(socketPath, seen) {
  const store = new Map()
  const server = net.createServer((socket) => {
    socket.setEncoding('latin1') // the documents are ASCII; latin1 is the cheapest decode
    let partial = ''
    socket.on('data', (chunk) => {
      seen()
      const text = partial + chunk
      let start = 0
      let out = ''
      for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
        out += answer(store, text, start, end)
        start = end + 1
      }
      partial = text.slice(start)
      if (out) socket.write(out, 'latin1')
    })
    socket.on('error', fail)
  })
  server.on('error', fail)
  return new Promise((resolve) => server.listen(socketPath, () => resolve(server)))
}

// The answer to the request text[start, end).
function answer(store, text, start, end) {
  const op = text[start]
  const keyEnd = op === 's' ? text.indexOf(' ', start + 2) : end
  const key = text.slice(start + 2, keyEnd)
  if (op === 'g') {
    const value = store.get(key)
    return value === undefined ? 'u\n' : `v ${value}\n`
  }
  if (op === 's' && keyEnd !== -1 && keyEnd < end) {
    store.set(key, text.slice(keyEnd + 1, end))
    return 'k\n'
  }
  throw new Error(`bad request ${JSON.stringify(text.slice(start, Math.min(end, start + 80)))}`)
}

async function main() {
  const paths = process.argv.slice(2)
  if (paths.length === 0) throw new Error('usage: map-hub.js <socket path> …')
  const seen = idleWatchdog()
  const servers = await Promise.all(paths.map((p) => serve(p, seen)))
  exitWithParent(() => servers.forEach((s) => s.close()))
  print({ ready: true })
}

main().catch(fail)
