'use strict'
// Writer of the large-value case (cases/large-value.js): rewrites one of two value segments
// with `bytes`-byte values as fast as it can, back to back for 2 ms at a time, then one
// event-loop turn (so that it hears the parent).
// node value-writer.js <pathA> <pathB> <bytes>
//
// Protocol: prints {"ready":true} once both segments are open (writing nothing yet); every
// stdin line {"target":"A"|"B"|null,"n":n} switches the segment it writes to (null: pause),
// and is answered {"switched":n} once the first write to the new target returned (at once
// for null). Ends when stdin closes or the parent disappears.

const { shareObject, print, fail, exitWithParent } = require('./common.js')

const [pathA, pathB, bytesArg] = process.argv.slice(2)
const bytes = Number(bytesArg)
const TURN_MS = 2
const segments = {
  A: shareObject.SharedObject.open(pathA, { size: bytes }),
  B: shareObject.SharedObject.open(pathB, { size: bytes }),
}
// Two values, so that every write changes the bytes.
const values = [Buffer.alloc(bytes, 0x61), Buffer.alloc(bytes, 0x62)]
let target = null
let answer = null
let i = 0

function loop() {
  if (target !== null) {
    const until = performance.now() + TURN_MS
    do segments[target].write(values[i++ & 1])
    while (performance.now() < until)
    if (answer !== null) {
      print(answer)
      answer = null
    }
    setImmediate(loop)
  } else {
    setTimeout(loop, 5) // paused: no busy loop
  }
}

let partial = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  const lines = (partial + chunk).split('\n')
  partial = lines.pop()
  for (const line of lines) {
    if (!line.trim()) continue
    try {
      const command = JSON.parse(line)
      const next = command.target
      if (next !== null && !(next in segments)) throw new Error(`unknown target ${next}`)
      target = next
      answer = { switched: command.n }
      if (target === null) {
        print(answer)
        answer = null
      }
    } catch (err) {
      fail(err)
    }
  }
})
exitWithParent(() => {
  segments.A.close()
  segments.B.close()
})
print({ ready: true })
loop()
