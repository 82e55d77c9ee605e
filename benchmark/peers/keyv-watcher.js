'use strict'
// Visibility peer for the Keyv case: reports when each new value of a key shows up here.
// node keyv-watcher.js <share-object|sqlite|sqlite-wal> <file> <key> <poll|wait>
// poll: keyv.get(key) in a loop (yielding to the event loop every 256 reads, so that it
// sees stdin close); wait: the share-object store's map.waitForChange() (no polling).
// Prints {"ready": true}, then {"seen": value, "t": "<hrtime ns>"} for each new value.

const path = require('node:path')
const { Keyv } = require('keyv')
const { KeyvSqlite } = require('@keyv/sqlite')
const { KeyvShareObject } = require(path.join(__dirname, '..', '..', 'keyv'))
const { print, fail, exitWithParent } = require('./common.js')

const [kind, file, key, mode] = process.argv.slice(2)

function open() {
  if (kind === 'share-object') return new KeyvShareObject({ path: file })
  return new KeyvSqlite({ uri: `sqlite://${file}`, busyTimeout: 10_000 })
}

async function poll(keyv) {
  let last
  for (let i = 1; ; i++) {
    const value = await keyv.get(key)
    if (value !== last) {
      print({ seen: value, t: String(process.hrtime.bigint()) })
      last = value
    }
    if ((i & 255) === 0) await new Promise(setImmediate)
  }
}

async function wait(store) {
  const prefixed = `keyv:${key}` // Keyv's namespace prefix: the key as the map holds it
  let next = store.map.waitForChange(prefixed) // armed before anything is reported
  let raw = store.map.get(prefixed)
  for (;;) {
    if (raw !== undefined) print({ seen: JSON.parse(raw).value, t: String(process.hrtime.bigint()) })
    raw = await next
    next = store.map.waitForChange(prefixed) // re-armed before this value is reported
  }
}

async function main() {
  const store = open()
  const keyv = new Keyv({ store })
  exitWithParent()
  print({ ready: true })
  if (mode === 'wait') await wait(store)
  else await poll(keyv)
}

main().catch(fail)
