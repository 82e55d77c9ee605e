'use strict'
// The large-map part of the SharedMap case (cases/shared-map.js), each step in a fresh
// process. Prints one JSON line.
//
//   node map-footprint.js build <map> <empty map> <entries>
//     creates <map> with `entries` entries (`user:<i>` → a 100-byte JSON document, as a
//     string), and <empty map> with none; reports the bytes of keys and values, the file's
//     size and its allocated blocks (stat blocks × 512), and the map's own counts.
//   node --expose-gc map-footprint.js read <map> <entries>
//     opens the map and gets every entry (checking each), with footprint snapshots
//     (peers/snapshot.js, after a full GC) before opening and after the last get.
//   node map-footprint.js attach <map> <empty map> <times>
//     times SharedMap.open() of each map `times` times, alternating (which map goes first
//     alternates too), closing each handle before the next open; reports every time in ns.

const fs = require('node:fs')
const path = require('node:path')
const { shareObject, print, fail } = require('./common.js')
const { snapshot } = require('./snapshot.js')
const { KEYS, VALUE_BYTES, key, documentOf } = require('./map-workload.js')

const { SharedMap } = shareObject

// The value of entry i: the workload's documents, reused every 10,000 keys (all 100 bytes).
function valuesOf() {
  return Array.from({ length: KEYS }, (_, i) => JSON.stringify(documentOf(i, 'A')))
}

function fileBytes(file) {
  const st = fs.statSync(file)
  return { size: st.size, allocated: st.blocks * 512 }
}

function build(file, emptyFile, entries) {
  const values = valuesOf()
  let keyBytes = 0
  const t0 = process.hrtime.bigint()
  const map = SharedMap.open(file)
  for (let i = 0; i < entries; i++) {
    const k = key(i)
    keyBytes += k.length // ASCII: one byte per character
    map.set(k, values[i % KEYS])
  }
  const ns = Number(process.hrtime.bigint() - t0)
  const info = map.info()
  map.close()
  SharedMap.open(emptyFile).close()
  const valueBytes = entries * VALUE_BYTES
  print({
    entries,
    keyBytes,
    valueBytes,
    rawBytes: keyBytes + valueBytes,
    file: fileBytes(file),
    emptyFile: fileBytes(emptyFile),
    info: { size: info.size, bytes: info.bytes, garbageBytes: info.garbageBytes, heapBytes: info.heapBytes, fileBytes: info.fileBytes, shards: info.shards },
    buildNs: ns,
  })
}

function read(file, entries) {
  const values = valuesOf()
  const before = snapshot(path.dirname(file))
  const map = SharedMap.open(file)
  for (let i = 0; i < entries; i++) {
    const value = map.get(key(i))
    if (value !== values[i % KEYS]) throw new Error(`${key(i)} reads ${JSON.stringify(value)}`)
  }
  const after = snapshot(path.dirname(file))
  map.close()
  print({ entries, before, after })
}

function attach(file, emptyFile, times) {
  // The first open of a process loads code paths both maps share: not part of either.
  SharedMap.open(emptyFile).close()
  const full = []
  const empty = []
  const once = (f, into) => {
    const t0 = process.hrtime.bigint()
    const map = SharedMap.open(f)
    into.push(Number(process.hrtime.bigint() - t0))
    map.close()
  }
  for (let i = 0; i < times; i++) {
    if (i % 2 === 0) {
      once(emptyFile, empty)
      once(file, full)
    } else {
      once(file, full)
      once(emptyFile, empty)
    }
  }
  print({ times, full, empty })
}

function main() {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'build') build(args[0], args[1], Number(args[2]))
  else if (mode === 'read') read(args[0], Number(args[1]))
  else if (mode === 'attach') attach(args[0], args[1], Number(args[2]))
  else throw new Error(`unknown mode ${mode}`)
}

try {
  main()
} catch (err) {
  fail(err)
}
