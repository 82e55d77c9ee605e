'use strict'
// Case 6: SharedMap, the keyed store shared by every process of a host (issue #12), against
// what Node users use for that today: lmdb (the npm package), a Unix-socket hub holding a
// Map (what cluster users write by hand), and node-shared-cache-x (when it builds).
//
// Workload (peers/map-workload.js): 10,000 keys `user:0` … `user:9999`, each a JSON
// document of exactly 100 bytes, as a string or as the object it encodes; one writer
// process and one reader process (peers/map-client.js, each with every store open), plus
// the hub's process (peers/map-hub.js). How each store is opened and used:
// peers/map-stores.js.
//
// What is measured, all in this one run:
// 1. Throughput. The writer sets, and then the reader gets, the 10,000 keys in a fixed
//    scattered order, in chunks of 1,000 (lmdb's put(): of 10,000, one write transaction
//    per chunk) until a time budget is spent; ops/s = ops ÷ time of the whole loop. Every
//    store and form is measured once per round, the rounds interleave them, and a row is
//    the median round. Every value read is checked. Sets alternate between two variants of
//    each document, so every set changes the value.
// 2. Visibility: how long until a set is seen by the other process. The writer sets one key
//    to a 100-byte document carrying its clock (process.hrtime.bigint(), CLOCK_MONOTONIC,
//    read just before the set), then waits 0.3–0.45 ms and one event-loop turn; the reader
//    either polls the key in a loop (a spinning reader: needs a free core) or listens with
//    watch(), and on every new value records its own clock minus the writer's. Medians and
//    p99 over every write of every round; "missed" counts writes overwritten before the
//    reader saw them.
// 3. A large map, each step in a fresh process (peers/map-footprint.js): 1,000,000 entries
//    of `user:<i>` → a 100-byte string; the file's allocated blocks against the bytes of
//    the keys and values; the RSS growth of a process that opens it and gets every entry;
//    the time of SharedMap.open() on it against an empty map (alternating, medians).
//
// The targets (harness/targets.js) are ratios of these numbers, each named in the
// section's `ratios` (higher is better for every one of them).

const fs = require('node:fs')
const path = require('node:path')
const { spawnPeer } = require('../harness/peer.js')
const { trackFile } = require('../harness/cleanup.js')
const { summarize } = require('../harness/stats.js')
const { duration, bytes, ratio, rate } = require('../harness/format.js')

const SHM = '/dev/shm'

// Throughput rows: a store, its read form and its write form(s) (peers/map-stores.js).
const THROUGHPUT = [
  { id: 'map-string', store: 'map-string', kind: 'so', label: 'SharedMap', values: 'strings', gets: 'get', sets: ['set'] },
  { id: 'map-object', store: 'map-object', kind: 'so', label: 'SharedMap', values: 'objects (default codec: JSON)', gets: 'get', sets: ['set'] },
  { id: 'lmdb-string', store: 'lmdb-string', kind: 'lmdb', label: 'lmdb', values: "strings (encoding 'string')", gets: 'getString', sets: ['putSync', 'put'] },
  { id: 'lmdb-object', store: 'lmdb-object', kind: 'lmdb', label: 'lmdb', values: 'objects (msgpack, its default)', gets: 'get', sets: ['putSync', 'put'] },
  { id: 'lmdb-object-structures', store: 'lmdb-object-structures', kind: 'lmdb', label: 'lmdb', values: 'objects (msgpack + sharedStructuresKey)', gets: 'get', sets: ['putSync', 'put'] },
  { id: 'hub-string', store: 'hub-string', kind: 'hub', label: 'Unix-socket hub', values: 'strings', gets: 'get', sets: ['set'] },
  { id: 'hub-object', store: 'hub-object', kind: 'hub', label: 'Unix-socket hub', values: 'objects (JSON at the client)', gets: 'get', sets: ['set'] },
  { id: 'nsc-string', store: 'nsc-string', kind: 'nsc', label: 'node-shared-cache-x', values: 'strings', gets: 'fastGet', sets: ['set'] },
  { id: 'nsc-object', store: 'nsc-object', kind: 'nsc', label: 'node-shared-cache-x', values: 'objects (its own serialisation)', gets: 'fastGet', sets: ['set'] },
]

// What each method is, in the table.
const METHODS = {
  get: 'get()',
  getString: 'getString()',
  fastGet: 'fastGet()',
  set: 'set()',
  putSync: 'putSync()',
  put: 'put(), one transaction per 10,000',
}

// Visibility rows: the store, how the writer sets, how the reader sees.
const VISIBILITY = [
  { id: 'map-poll', store: 'map-string', publish: 'set', how: 'poll', spins: true, label: 'SharedMap: set() → get() in a loop' },
  { id: 'map-watch', store: 'map-string', publish: 'set', how: 'watch', label: 'SharedMap: set() → watch(key) listener' },
  { id: 'object-watch', store: 'object', publish: 'write', how: 'watch', label: 'SharedObject: write() → watch() listener' },
  { id: 'lmdb-sync', store: 'lmdb-string', publish: 'putSync', how: 'poll', spins: true, label: 'lmdb: putSync() → resetReadTxn() + getString() in a loop' },
  { id: 'lmdb-async', store: 'lmdb-string', publish: 'put', how: 'poll', spins: true, label: 'lmdb: put() → resetReadTxn() + getString() in a loop' },
  { id: 'hub-poll', store: 'hub-string', publish: 'set', how: 'poll', label: 'Unix-socket hub: set → get requests in a loop' },
  { id: 'nsc-poll', store: 'nsc-string', publish: 'set', how: 'poll', spins: true, label: 'node-shared-cache-x: set → fastGet() in a loop' },
]

const STORES = ['map-string', 'map-object', 'object', 'lmdb-string', 'lmdb-object', 'lmdb-object-structures', 'hub-string', 'hub-object', 'nsc-string', 'nsc-object']
const PACKAGES = { lmdb: 'lmdb', nsc: 'node-shared-cache-x' }

const FULL = { rounds: 5, budgetMs: 250, warmupMs: 250, visibilityRounds: 3, writes: 400, gapUs: 300, entries: 1_000_000, opens: 41 }
const QUICK = { rounds: 1, budgetMs: 25, warmupMs: 10, visibilityRounds: 1, writes: 40, gapUs: 300, entries: 50_000, opens: 7 }
const WAIT_MS = 30_000 // slack on top of any command's own duration

async function run(ctx) {
  const config = ctx.quick ? QUICK : FULL
  const dir = path.join(ctx.dir, 'shared-map')
  fs.mkdirSync(dir)
  const { throughput, visibility, missing } = await measureStores(dir, config)
  const footprint = await measureLargeMap(path.join(dir, 'large'), config)
  return report({ config, throughput, visibility, footprint, missing, quick: ctx.quick })
}

// --- throughput and visibility -----------------------------------------------------------

async function measureStores(dir, config) {
  const sockets = [path.join(dir, 'hub-string.sock'), path.join(dir, 'hub-object.sock')]
  const nscNames = ['string', 'object'].map((v) => `share-object-bench-${process.pid}-${v}`)
  for (const name of nscNames) {
    trackFile(path.join(SHM, name))
    trackFile(path.join(SHM, `${name}.lock`))
  }
  const args = (role) => [role, dir, ...sockets, ...nscNames, ...STORES]
  const peers = []
  try {
    const hub = spawnPeer('map-hub', sockets)
    peers.push(hub)
    await hub.ready()
    const writer = spawnPeer('map-client', args('writer'))
    peers.push(writer)
    const { missing } = await writer.ready(WAIT_MS)
    await writer.request({ cmd: 'fill' }, WAIT_MS, 'the first pass of sets')
    const reader = spawnPeer('map-client', args('reader'))
    peers.push(reader)
    await reader.ready(WAIT_MS)
    const rows = THROUGHPUT.filter((r) => !missing[r.store])
    const visible = VISIBILITY.filter((r) => !missing[r.store])
    const samples = Object.fromEntries(rows.map((r) => [r.id, { gets: [], sets: Object.fromEntries(r.sets.map((m) => [m, []])) }]))
    await throughputRound(writer, reader, rows, config.warmupMs, null)
    for (let round = 0; round < config.rounds; round++) await throughputRound(writer, reader, rows, config.budgetMs, samples)
    const latencies = Object.fromEntries(visible.map((r) => [r.id, { ns: [], missed: 0 }]))
    let runId = 0
    for (let round = 0; round < config.visibilityRounds; round++) {
      for (const row of visible) {
        const got = await visibilityRun(writer, reader, row, ++runId, config)
        latencies[row.id].ns.push(...got.latencies)
        latencies[row.id].missed += got.missed
      }
    }
    return { throughput: throughputRows(samples, missing), visibility: visibilityRows(latencies, missing), missing }
  } finally {
    await Promise.allSettled(peers.map((p) => p.stop()))
  }
}

let setCalls = 0 // every sets command flips the variant, so every pass changes the values

// One round: every set form of every row in the writer, then its gets in the reader.
// `samples` null: a warm-up (JIT, page faults), not recorded.
async function throughputRound(writer, reader, rows, budgetMs, samples) {
  for (const row of rows) {
    for (const form of row.sets) {
      const variant = ++setCalls & 1
      const r = await writer.request({ cmd: 'sets', store: row.store, form, budgetMs, variant }, budgetMs + WAIT_MS, `${row.id} ${form} timings`)
      if (samples) samples[row.id].sets[form].push(r.ns / r.ops)
    }
    const r = await reader.request({ cmd: 'gets', store: row.store, form: row.gets, budgetMs }, budgetMs + WAIT_MS, `${row.id} ${row.gets} timings`)
    if (samples) samples[row.id].gets.push(r.ns / r.ops)
  }
}

// One visibility run: the reader starts watching or polling, then the writer writes.
async function visibilityRun(writer, reader, row, run, config) {
  const timeoutMs = Math.ceil((config.writes * config.gapUs * 2) / 1000) + WAIT_MS
  const observing = await reader.send({ cmd: 'observe', store: row.store, how: row.how, run, count: config.writes, timeoutMs })
  await reader.message((m) => m.id === observing && m.observing, WAIT_MS, `${row.id}: the reader's start`)
  await writer.request({ cmd: 'publish', store: row.store, form: row.publish, run, count: config.writes, gapUs: config.gapUs }, timeoutMs, `${row.id}: the writer's writes`)
  return reader.message((m) => m.id === observing && m.latencies !== undefined, timeoutMs, `${row.id}: what the reader saw`)
}

const perSecond = (nsPerOp) => 1e9 / nsPerOp

function measureOf(method, perRound) {
  const ns = summarize(perRound)
  return { method, label: METHODS[method], perRound, nsPerOp: ns.median, opsPerSec: perSecond(ns.median), slowest: perSecond(ns.max), fastest: perSecond(ns.min) }
}

function throughputRows(samples, missing) {
  return THROUGHPUT.map((r) => {
    const base = { id: r.id, store: r.store, kind: r.kind, label: r.label, values: r.values, form: r.id.endsWith('string') ? 'string' : 'object' }
    if (missing[r.store]) return { ...base, missing: missing[r.store], gets: null, sets: [] }
    const s = samples[r.id]
    return { ...base, missing: null, gets: measureOf(r.gets, s.gets), sets: r.sets.map((m) => measureOf(m, s.sets[m])) }
  })
}

function visibilityRows(latencies, missing) {
  return VISIBILITY.map((r) => {
    const base = { id: r.id, label: r.label, how: r.how, spins: Boolean(r.spins) }
    if (missing[r.store]) return { ...base, missing: missing[r.store], ns: null, missed: 0 }
    const l = latencies[r.id]
    return { ...base, missing: null, ns: summarize(l.ns), missed: l.missed }
  })
}

// --- the large map --------------------------------------------------------------------------

async function measureLargeMap(dir, config) {
  fs.mkdirSync(dir)
  const full = path.join(dir, 'full.map')
  const empty = path.join(dir, 'empty.map')
  const build = await inChild(['build', full, empty, config.entries], 600_000)
  const read = await inChild(['read', full, config.entries], 300_000, ['--expose-gc'])
  const attach = await inChild(['attach', full, empty, config.opens], 120_000)
  fs.rmSync(dir, { recursive: true, force: true }) // a few hundred MB: gone before the next case
  return { build, read, attach }
}

// Runs a map-footprint step to completion; returns its result line.
async function inChild(args, ms, nodeArgs = []) {
  const peer = spawnPeer('map-footprint', args, { nodeArgs })
  try {
    return await peer.message((m) => m.entries !== undefined || m.times !== undefined, ms, `the ${args[0]} step's result`)
  } finally {
    await peer.stop()
  }
}

// --- the section ------------------------------------------------------------------------------

function report({ config, throughput, visibility, footprint, missing, quick }) {
  const byId = (rows, id) => rows.find((r) => r.id === id)
  const row = (id) => byId(throughput, id)
  const gets = (id) => row(id).gets?.opsPerSec ?? NaN
  const sets = (id, method) => row(id).sets.find((m) => m.method === method)?.opsPerSec ?? NaN
  const bestLmdbSets = (id) => Math.max(sets(id, 'putSync'), sets(id, 'put'))
  for (const r of throughput) {
    if (r.missing || r.kind === 'so') continue
    const map = row(r.form === 'string' ? 'map-string' : 'map-object')
    r.mapGetsRatio = map.gets.opsPerSec / r.gets.opsPerSec
    for (const m of r.sets) m.mapRatio = map.sets[0].opsPerSec / m.opsPerSec
  }
  const median = (id) => byId(visibility, id).ns?.median ?? NaN
  const lmdbVisible = Math.min(median('lmdb-sync'), median('lmdb-async'))
  for (const r of visibility) if (!r.missing) r.lmdbRatio = lmdbVisible / r.ns.median

  const { build, read, attach } = footprint
  const rssGrowth = read.after.rss - read.before.rss
  const fullOpen = summarize(attach.full)
  const emptyOpen = summarize(attach.empty)
  const large = {
    entries: build.entries,
    rawBytes: build.rawBytes,
    keyBytes: build.keyBytes,
    valueBytes: build.valueBytes,
    file: build.file,
    emptyFile: build.emptyFile,
    info: build.info,
    buildNsPerSet: build.buildNs / build.entries,
    read,
    rssGrowth,
    open: { full: fullOpen, empty: emptyOpen, times: attach.times },
  }

  const why = (...ids) => ids.map((id) => missing[id]).find(Boolean) || null
  const perSec = (x) => `${rate(x)}/s`
  const µs = (id) => duration(median(id))
  const versus = (a, b) => `${perSec(a)} vs ${perSec(b)}`
  const lmdbSets = (id) => `${perSec(sets(id, 'putSync'))} putSync(), ${perSec(sets(id, 'put'))} put()`
  const entries = large.entries.toLocaleString('en-US')
  const ratios = [
    { id: 'gets-string', label: 'gets/s, strings: SharedMap ÷ lmdb getString()', value: gets('map-string') / gets('lmdb-string'), detail: versus(gets('map-string'), gets('lmdb-string')), missing: why('lmdb-string') },
    { id: 'gets-object', label: 'gets/s, objects: SharedMap ÷ lmdb (msgpack)', value: gets('map-object') / gets('lmdb-object'), detail: versus(gets('map-object'), gets('lmdb-object')), missing: why('lmdb-object') },
    { id: 'gets-object-structures', label: 'gets/s, objects: SharedMap ÷ lmdb (msgpack + sharedStructuresKey)', value: gets('map-object') / gets('lmdb-object-structures'), detail: versus(gets('map-object'), gets('lmdb-object-structures')), missing: why('lmdb-object-structures') },
    { id: 'sets-string-lmdb', label: 'sets/s, strings: SharedMap ÷ lmdb (its faster form)', value: sets('map-string', 'set') / bestLmdbSets('lmdb-string'), detail: `${perSec(sets('map-string', 'set'))} vs ${lmdbSets('lmdb-string')}`, missing: why('lmdb-string') },
    { id: 'sets-object-lmdb', label: 'sets/s, objects: SharedMap ÷ lmdb (its faster form)', value: sets('map-object', 'set') / bestLmdbSets('lmdb-object'), detail: `${perSec(sets('map-object', 'set'))} vs ${lmdbSets('lmdb-object')}`, missing: why('lmdb-object') },
    { id: 'sets-string-nsc', label: 'sets/s, strings: SharedMap ÷ node-shared-cache-x', value: sets('map-string', 'set') / sets('nsc-string', 'set'), detail: versus(sets('map-string', 'set'), sets('nsc-string', 'set')), missing: why('nsc-string') },
    { id: 'sets-object-nsc', label: 'sets/s, objects: SharedMap ÷ node-shared-cache-x', value: sets('map-object', 'set') / sets('nsc-object', 'set'), detail: versus(sets('map-object', 'set'), sets('nsc-object', 'set')), missing: why('nsc-object') },
    { id: 'gets-string-hub', label: 'gets/s, strings: SharedMap ÷ Unix-socket hub', value: gets('map-string') / gets('hub-string'), detail: versus(gets('map-string'), gets('hub-string')), missing: null },
    { id: 'visible-poll', label: 'set → visible to a polling get(): lmdb median ÷ SharedMap median', value: lmdbVisible / median('map-poll'), detail: `SharedMap ${µs('map-poll')}; lmdb putSync() ${µs('lmdb-sync')}, put() ${µs('lmdb-async')}`, missing: why('lmdb-string') },
    { id: 'visible-watch', label: 'set → watch() listener: SharedObject median ÷ SharedMap median', value: median('object-watch') / median('map-watch'), detail: `SharedMap ${µs('map-watch')}, SharedObject ${µs('object-watch')}: SharedMap takes ${ratio(median('map-watch') / median('object-watch'))} as long`, missing: null },
    { id: 'disk', label: `${entries} entries: keys + values ÷ allocated file blocks`, value: large.rawBytes / large.file.allocated, detail: `${bytes(large.file.allocated)} on disk for ${bytes(large.rawBytes)} of keys and values: ${ratio(large.file.allocated / large.rawBytes)}`, missing: null },
    { id: 'rss', label: `${entries} entries: keys + values ÷ RSS growth of a process reading all`, value: large.rawBytes / rssGrowth, detail: `RSS ${bytes(rssGrowth, true)} (${bytes(read.after.segmentRss - read.before.segmentRss)} of it the map file's pages) for ${bytes(large.rawBytes)}: ${ratio(rssGrowth / large.rawBytes)}`, missing: null },
    { id: 'attach', label: `open(): empty map ÷ ${entries}-entry map`, value: emptyOpen.median / fullOpen.median, detail: `medians of ${attach.times}: ${duration(fullOpen.median)} full, ${duration(emptyOpen.median)} empty`, missing: null },
  ]
  return {
    id: 'shared-map',
    config,
    packages: Object.fromEntries(Object.entries(PACKAGES).map(([k, name]) => [k, { name, version: versionOf(name) }])),
    missing,
    throughput,
    visibility,
    large,
    ratios,
    quick,
  }
}

function versionOf(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

module.exports = { run }
