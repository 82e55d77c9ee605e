'use strict'
// Case 5: Keyv stores. Keyv over share-object/keyv against what a Keyv user would pick
// instead: Keyv's default in-process Map, and @keyv/sqlite (a file that several processes
// can share: what users pick for a multi-process cache without a server), in its default
// rollback-journal mode and in WAL mode.
//
// Two measures, both through Keyv's own API (its serialisation included, as users run it):
// - gets and sets per second: `await keyv.get(key)` / `await keyv.set(key, value)` one after
//   another (as a request handler awaits them), over 1,000 keys holding a ~90-byte object.
//   Each sample is a batch timed as a whole (async calls cost too little to time one by
//   one); every store once per round, rounds interleaved, the median over rounds.
// - time until a set is visible in another process: a spawned peer (peers/keyv-watcher.js)
//   reads the key through Keyv in a loop (polling: Keyv has no change notification); the
//   parent reads its clock, then `await keyv.set(key, n)`; the peer reads its clock when a
//   get first returns n. Latency = the peer's time − the parent's (process.hrtime: the
//   system's CLOCK_MONOTONIC, shared by the processes). It includes the set itself. One
//   more row has the peer wait with SharedMap's waitForChange() on the store's map instead
//   of polling. The Map store has no other process to see it: n/a.
//
// sqlite writes sync to disk on every commit (its default `synchronous`), so its sets
// depend on the disk; share-object's never touch the disk (the mapping is shared memory).

const path = require('node:path')
const { Keyv } = require('keyv')
const { KeyvSqlite } = require('@keyv/sqlite')
const { KeyvShareObject } = require('../../keyv')
const { spawnPeer } = require('../harness/peer.js')
const { summarize } = require('../harness/stats.js')

const KEYS = 1000
const VALUE = { id: 0, name: 'Ada Lovelace', roles: ['reader', 'writer'], active: true, score: 0.5 }
const SEEN_MS = 10_000 // deadline for the peer to see one set

const STORES = [
  { id: 'map', label: "Keyv's default Map (one process only)", open: () => ({ keyv: new Keyv(), close: async () => {} }) },
  {
    id: 'share-object',
    label: 'share-object/keyv',
    open: (dir) => {
      const store = new KeyvShareObject({ path: path.join(dir, 'keyv.map') })
      return { keyv: new Keyv({ store }), close: () => store.disconnect() }
    },
  },
  { id: 'sqlite', label: '@keyv/sqlite (default journal)', open: (dir) => openSqlite(dir, 'keyv.sqlite', false) },
  { id: 'sqlite-wal', label: '@keyv/sqlite, WAL journal', open: (dir) => openSqlite(dir, 'keyv-wal.sqlite', true) },
]

const VISIBILITY = [
  { id: 'share-object', store: 'share-object', mode: 'poll', label: 'share-object/keyv, peer polls keyv.get()' },
  { id: 'share-object-wait', store: 'share-object', mode: 'wait', label: 'share-object/keyv, peer waits: store.map.waitForChange()' },
  { id: 'sqlite', store: 'sqlite', mode: 'poll', label: '@keyv/sqlite (default journal), peer polls keyv.get()' },
  { id: 'sqlite-wal', store: 'sqlite-wal', mode: 'poll', label: '@keyv/sqlite, WAL journal, peer polls keyv.get()' },
]

function openSqlite(dir, name, wal) {
  const store = new KeyvSqlite({ uri: `sqlite://${path.join(dir, name)}`, busyTimeout: 10_000 })
  const keyv = new Keyv({ store })
  const ready = wal ? store.query('PRAGMA journal_mode=WAL') : Promise.resolve()
  return { keyv, ready, close: () => store.disconnect() }
}

// ns per call of `op(i)` awaited `n` times in a row.
async function timeAsyncBatch(op, n, from) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await op(from + i)
  return Number(process.hrtime.bigint() - t0) / n
}

// The smallest power of two n for which a batch lasts at least targetMs (also a warm-up).
async function calibrate(op, targetMs) {
  for (let n = 4; ; n *= 2) {
    if ((await timeAsyncBatch(op, n, 0)) * n >= targetMs * 1e6 || n >= 1 << 20) return n
  }
}

async function throughput(ctx, stores) {
  const { rounds, targetMs, keys } = ctx.quick ? { rounds: 2, targetMs: 5, keys: 50 } : { rounds: 15, targetMs: 60, keys: KEYS }
  const ops = {}
  for (const s of stores) {
    const value = (i) => ({ ...VALUE, id: i })
    ops[`${s.id}:set`] = (i) => s.keyv.set(`user:${i % keys}`, value(i))
    ops[`${s.id}:get`] = (i) => s.keyv.get(`user:${i % keys}`).then((v) => {
      if (v === undefined) throw new Error(`${s.id}: user:${i % keys} is missing`)
    })
    for (let i = 0; i < keys; i++) await s.keyv.set(`user:${i}`, value(i))
  }
  const sizes = {}
  for (const [id, op] of Object.entries(ops)) sizes[id] = await calibrate(op, targetMs)
  const samples = Object.fromEntries(Object.keys(ops).map((id) => [id, []]))
  const order = Object.keys(ops)
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < order.length; k++) {
      const id = order[(k + round) % order.length]
      samples[id].push(await timeAsyncBatch(ops[id], sizes[id], round * sizes[id]))
    }
  }
  return { samples, sizes, rounds, keys }
}

// The peer reads the key until it sees each value the parent sets; returns ns per set.
async function visibility(ctx, dir, v, keyv) {
  const rounds = ctx.quick ? 5 : v.store.startsWith('sqlite') ? 100 : 300
  const file = v.store === 'share-object' ? path.join(dir, 'keyv.map') : path.join(dir, v.store === 'sqlite' ? 'keyv.sqlite' : 'keyv-wal.sqlite')
  const key = `visible:${v.id}`
  await keyv.set(key, -1)
  const peer = spawnPeer('keyv-watcher', [v.store, file, key, v.mode])
  try {
    await peer.ready()
    await peer.message((m) => m.seen === -1, SEEN_MS, 'the first value')
    const ns = []
    for (let n = 0; n < rounds; n++) {
      const seen = peer.message((m) => m.seen === n, SEEN_MS, `value ${n}`)
      const t0 = process.hrtime.bigint()
      await keyv.set(key, n)
      const { t } = await seen
      ns.push(Number(BigInt(t) - t0))
    }
    return ns
  } finally {
    await peer.stop()
  }
}

async function run(ctx) {
  const dir = ctx.dir
  const stores = []
  try {
    for (const s of STORES) {
      const opened = s.open(dir)
      await opened.ready
      stores.push({ ...s, ...opened })
    }
    const t = await throughput(ctx, stores)
    const latency = {}
    for (const v of VISIBILITY) latency[v.id] = summarize(await visibility(ctx, dir, v, stores.find((s) => s.id === v.store).keyv))
    return report(t, latency)
  } finally {
    for (const s of stores) await s.close()
  }
}

function report({ samples, sizes, rounds, keys }, latency) {
  const perSec = (id) => {
    const s = summarize(samples[id].map((ns) => 1e9 / ns))
    return { median: s.median, min: s.min, max: s.max, n: s.n, batch: sizes[id] }
  }
  const rows = STORES.map((s) => ({ id: s.id, label: s.label, get: perSec(`${s.id}:get`), set: perSec(`${s.id}:set`) }))
  const so = rows.find((r) => r.id === 'share-object')
  for (const r of rows) {
    r.getVsShareObject = so.get.median / r.get.median
    r.setVsShareObject = so.set.median / r.set.median
  }
  const visible = VISIBILITY.map((v) => ({ id: v.id, label: v.label, mode: v.mode, ns: latency[v.id] }))
  const soPoll = latency['share-object']
  for (const r of visible) r.vsShareObject = r.ns.median / soPoll.median
  return { id: 'keyv', keys, valueBytes: JSON.stringify({ value: VALUE, expires: null }).length, rounds, rows, visible }
}

module.exports = { run }
