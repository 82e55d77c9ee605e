'use strict'

// One side of a cross-runtime case (cases.cjs), run by any runtime (Node, Bun, Deno):
//   <runtime> peer.cjs receive|send|load <case index> <segment file> <run as JSON>
// The receiver prints "ready" once it waits, then "result <JSON>"; the sender prints "sent";
// `load` writes and reads the segment in this process and prints "loaded <runtime> <version>".
// Any failure prints the error and exits 1. Lines go straight to fd 1 (fs.writeSync), so a
// receiver blocked in waitForChangeSync() has already said "ready".

const fs = require('node:fs')
const path = require('node:path')
const so = require(path.join(__dirname, '..', '..'))
const cases = require('./cases.cjs')

const say = (line) => fs.writeSync(1, `${line}\n`)

/** Which runtime this is, by its own word: "node 22.23.5", "bun 1.4.5", "deno 2.9.6". */
function runtime() {
  if (typeof Bun !== 'undefined') return `bun ${Bun.version}`
  if (typeof Deno !== 'undefined') return `deno ${Deno.version.deno}`
  return `node ${process.versions.node}`
}

async function main() {
  const [role, index, file, runJson] = process.argv.slice(2)
  const c = cases[Number(index)]
  if (!c || !['receive', 'send', 'load'].includes(role)) throw new Error(`usage: peer.cjs receive|send|load <case index> <file> <run>`)
  const run = JSON.parse(runJson)
  if (role === 'load') {
    const s = so.SharedObject.open(file)
    s.write('loaded')
    if (s.read() !== 'loaded') throw new Error(`read back ${JSON.stringify(s.read())}`)
    s.close()
    say(`loaded ${runtime()}`)
  } else if (role === 'send') {
    await c.send(so, file, run)
    say('sent')
  } else {
    const result = await c.receive(so, file, run, () => say('ready'))
    say(`result ${JSON.stringify(result)}`)
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    fs.writeSync(2, `peer failed: ${err?.stack ?? err}\n`)
    process.exit(1)
  },
)
