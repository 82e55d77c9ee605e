'use strict'
// The stores of the SharedMap case (cases/shared-map.js), as the writer and the reader
// process open them. Each store has its own loops, written out for it (no generic loop
// calling a store method through an interface: V8 would see several stores' methods at one
// call site and slow every store down alike), over the workload of peers/map-workload.js:
//
//   sets[form].run(from, count, variant)  sets keys order[from … from+count) to their
//                                         document of that variant (sync, or a Promise
//                                         when sets[form].async; `batched`: give it a
//                                         whole pass at a time)
//   gets[form].run(from, count)           gets the same keys and checks each value
//   publish[form](value)                  sets the visibility key (may return a Promise)
//   poll()                                one read of the visibility key (may return a
//                                         Promise when pollAsync; pollYieldUs: the poller
//                                         must give the event loop a turn that often)
//   watch(listener)                       listener(value) on every change of the
//                                         visibility key; returns a function that stops it
//
// The stores (how each is opened is what makes it as fast as it honestly can be here):
//   map-string / map-object    SharedMap, default options and codec (strings as themselves,
//                              objects as JSON)
//   object                     a SharedObject, for the watch() latency it is compared with
//   lmdb-string                lmdb, encoding 'string' (getString, putSync / put)
//   lmdb-object                lmdb, its default msgpack encoding of objects
//   lmdb-object-structures     lmdb, msgpack with sharedStructuresKey (its records
//                              extension: the recommended setting for objects of one shape)
//   hub-string / hub-object    the Unix-socket hub (peers/map-hub.js): one request and its
//                              answer per operation; objects are JSON.stringify()ed for the
//                              request and JSON.parse()d from the answer
//   nsc-string / nsc-object    node-shared-cache-x (shared memory, flock-based locks, its own
//                              binary serialisation of objects); reads with fastGet()
// Every lmdb store is opened with noSync (no fsync at commit) and useWritemap (writes go
// straight to the shared mapping: putSync twice as fast here, reads unchanged), and a map
// size that never needs a resize during the run.

const net = require('node:net')
const path = require('node:path')
const { shareObject } = require('./common.js')
const { KEYS, VALUE_BYTES, VISIBLE_KEY, workload } = require('./map-workload.js')

const { SharedMap, SharedObject } = shareObject
const W = workload()
const MiB = 1024 * 1024
const LMDB_OPTIONS = { noSync: true, useWritemap: true, mapSize: 1024 * MiB }
// node-shared-cache-x: 32 MiB of shared memory (far more than the workload needs, so its LRU
// never evicts) in 128-byte blocks (64, 128 and 256 measured within noise of each other).
const NSC_BYTES = 32 * MiB
const NSC_BLOCK_SHIFT = 7

/** The module `name`, or { missing: why } when it is not installed or does not load. */
function optional(name) {
  try {
    return { module: require(name) }
  } catch (err) {
    return { missing: `${name} could not be loaded: ${String(err.message).split('\n')[0]}` }
  }
}

function badValue(store, j, value) {
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 60)) : typeof value === 'object' && value !== null ? JSON.stringify(value).slice(0, 60) : String(value)
  return new Error(`${store}: wrong value for ${W.keys[j]}: ${shown}`)
}

// --- SharedMap and SharedObject ---------------------------------------------------------

function openMapString({ dir }) {
  const map = SharedMap.open(path.join(dir, 'map-string.map'))
  const { keys, strings, order } = W
  return {
    sets: {
      set: {
        run(from, count, variant) {
          const values = strings[variant]
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            map.set(keys[j], values[j])
          }
        },
      },
    },
    gets: {
      get: {
        run(from, count) {
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            const value = map.get(keys[j])
            if (value.length !== VALUE_BYTES) throw badValue('map-string', j, value)
          }
        },
      },
    },
    publish: { set: (value) => map.set(VISIBLE_KEY, value) },
    poll: () => map.get(VISIBLE_KEY),
    watch: (listener) => map.watch(VISIBLE_KEY, listener),
    close: () => map.close(),
  }
}

function openMapObject({ dir }) {
  const map = SharedMap.open(path.join(dir, 'map-object.map'))
  const { keys, objects, order } = W
  return {
    sets: {
      set: {
        run(from, count, variant) {
          const values = objects[variant]
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            map.set(keys[j], values[j])
          }
        },
      },
    },
    gets: {
      get: {
        run(from, count) {
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            const value = map.get(keys[j])
            if (value.id !== j) throw badValue('map-object', j, value)
          }
        },
      },
    },
    close: () => map.close(),
  }
}

function openObject({ dir }) {
  const segment = SharedObject.open(path.join(dir, 'visible.seg'), { size: 4096 })
  return {
    sets: {},
    gets: {},
    publish: { write: (value) => segment.write(value) },
    poll: () => segment.read(),
    watch: (listener) => segment.watch(listener),
    close: () => segment.close(),
  }
}

// --- lmdb ---------------------------------------------------------------------------------

function openLmdbString({ dir, lmdb }) {
  const db = lmdb.open({ path: path.join(dir, 'lmdb-string'), encoding: 'string', ...LMDB_OPTIONS })
  const { keys, strings, order } = W
  return {
    sets: {
      putSync: {
        run(from, count, variant) {
          const values = strings[variant]
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            db.putSync(keys[j], values[j])
          }
        },
      },
      put: {
        async: true,
        batched: true,
        // Every put of the chunk goes into one write transaction (lmdb batches the puts of
        // one event turn), committed on lmdb's write thread; resolves once it is committed.
        async run(from, count, variant) {
          const values = strings[variant]
          let last
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            last = db.put(keys[j], values[j])
          }
          await last
        },
      },
    },
    gets: {
      getString: {
        run(from, count) {
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            const value = db.getString(keys[j])
            if (value.length !== VALUE_BYTES) throw badValue('lmdb-string', j, value)
          }
        },
      },
    },
    publish: {
      putSync: (value) => db.putSync(VISIBLE_KEY, value),
      put: (value) => db.put(VISIBLE_KEY, value),
    },
    // lmdb-js keeps one read snapshot per event turn: a reader that polls in a loop must
    // call resetReadTxn() to see another process's commit (what it is documented for).
    // (An explicit read transaction from useReadTransaction() is not renewed in a loop, and
    // its renew() keeps the old snapshot.) Each resetReadTxn() + get leaves one
    // setTimeout(…, 0) behind, which only an event-loop turn clears: a loop that never
    // yields grows the heap by ~190 MB a second and stalls in 10 ms scavenges. So this
    // poller yields once a millisecond (pollYieldUs), which keeps it at a few thousand
    // pending timers and no long pauses.
    poll: () => {
      db.resetReadTxn()
      return db.getString(VISIBLE_KEY)
    },
    pollYieldUs: 1000,
    close: () => db.close(),
  }
}

function openLmdbObject({ dir, lmdb }, name, extra) {
  const db = lmdb.open({ path: path.join(dir, name), ...LMDB_OPTIONS, ...extra })
  const { keys, objects, order } = W
  return {
    sets: {
      putSync: {
        run(from, count, variant) {
          const values = objects[variant]
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            db.putSync(keys[j], values[j])
          }
        },
      },
      put: {
        async: true,
        batched: true,
        async run(from, count, variant) {
          const values = objects[variant]
          let last
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            last = db.put(keys[j], values[j])
          }
          await last
        },
      },
    },
    gets: {
      get: {
        run(from, count) {
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            const value = db.get(keys[j])
            if (value.id !== j) throw badValue(name, j, value)
          }
        },
      },
    },
    close: () => db.close(),
  }
}

// --- the Unix-socket hub ------------------------------------------------------------------

/** A client of peers/map-hub.js: get(key) → Promise<string | undefined>, set(key, value) → Promise. */
function connectHub(socketPath) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    const waiting = [] // resolvers of the requests sent, in order
    let partial = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk) => {
      const text = partial + chunk
      let start = 0
      for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
        const answer = text[start] === 'v' ? text.slice(start + 2, end) : text[start] === 'u' ? undefined : true
        start = end + 1
        const next = waiting.shift()
        if (next) next.resolve(answer)
      }
      partial = text.slice(start)
    })
    const failAll = (err) => {
      for (const w of waiting.splice(0)) w.reject(err)
    }
    socket.on('close', () => failAll(new Error(`hub connection ${socketPath} closed`)))
    socket.once('error', (err) => {
      failAll(err)
      reject(err)
    })
    socket.once('connect', () => {
      socket.on('error', failAll)
      resolve({
        get: (key) =>
          new Promise((res, rej) => {
            waiting.push({ resolve: res, reject: rej })
            socket.write(`g ${key}\n`, 'latin1')
          }),
        set: (key, value) =>
          new Promise((res, rej) => {
            waiting.push({ resolve: res, reject: rej })
            socket.write(`s ${key} ${value}\n`, 'latin1')
          }),
        close: () => socket.destroy(),
      })
    })
  })
}

async function openHubString({ hubSockets }) {
  const hub = await connectHub(hubSockets[0])
  const { keys, strings, order } = W
  return {
    sets: {
      set: {
        async: true,
        async run(from, count, variant) {
          const values = strings[variant]
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            await hub.set(keys[j], values[j])
          }
        },
      },
    },
    gets: {
      get: {
        async: true,
        async run(from, count) {
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            const value = await hub.get(keys[j])
            if (value.length !== VALUE_BYTES) throw badValue('hub-string', j, value)
          }
        },
      },
    },
    publish: { set: (value) => hub.set(VISIBLE_KEY, value) },
    poll: () => hub.get(VISIBLE_KEY),
    pollAsync: true,
    close: () => hub.close(),
  }
}

async function openHubObject({ hubSockets }) {
  const hub = await connectHub(hubSockets[1])
  const { keys, objects, order } = W
  return {
    sets: {
      set: {
        async: true,
        async run(from, count, variant) {
          const values = objects[variant]
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            await hub.set(keys[j], JSON.stringify(values[j]))
          }
        },
      },
    },
    gets: {
      get: {
        async: true,
        async run(from, count) {
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            const value = JSON.parse(await hub.get(keys[j]))
            if (value.id !== j) throw badValue('hub-object', j, value)
          }
        },
      },
    },
    close: () => hub.close(),
  }
}

// --- node-shared-cache-x ------------------------------------------------------------------

// Its index.js assigns module.exports and then sets exports.Cache on the old object, so the
// exported Cache is the native constructor: new Cache(name, bytes, blockShift), with `name`
// the POSIX shared-memory name (/dev/shm/<name>, plus /dev/shm/<name>.lock).
function openNscString({ nsc, nscNames }) {
  const cache = new nsc.Cache(nscNames[0], NSC_BYTES, NSC_BLOCK_SHIFT)
  const { fastGet } = nsc
  const { keys, strings, order } = W
  return {
    sets: {
      set: {
        run(from, count, variant) {
          const values = strings[variant]
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            cache[keys[j]] = values[j]
          }
        },
      },
    },
    gets: {
      fastGet: {
        run(from, count) {
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            const value = fastGet(cache, keys[j])
            if (value.length !== VALUE_BYTES) throw badValue('nsc-string', j, value)
          }
        },
      },
    },
    publish: {
      set: (value) => {
        cache[VISIBLE_KEY] = value
      },
    },
    poll: () => fastGet(cache, VISIBLE_KEY),
    close() {},
  }
}

function openNscObject({ nsc, nscNames }) {
  const cache = new nsc.Cache(nscNames[1], NSC_BYTES, NSC_BLOCK_SHIFT)
  const { fastGet } = nsc
  const { keys, objects, order } = W
  return {
    sets: {
      set: {
        run(from, count, variant) {
          const values = objects[variant]
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            cache[keys[j]] = values[j]
          }
        },
      },
    },
    gets: {
      fastGet: {
        run(from, count) {
          for (let i = from; i < from + count; i++) {
            const j = order[i]
            const value = fastGet(cache, keys[j])
            if (value.id !== j) throw badValue('nsc-object', j, value)
          }
        },
      },
    },
    close() {},
  }
}

// --- the list -------------------------------------------------------------------------------

// { id: { needs: module name | null, open(ctx) } }; ctx gets the module as ctx.lmdb / ctx.nsc.
const STORES = {
  'map-string': { needs: null, open: openMapString },
  'map-object': { needs: null, open: openMapObject },
  object: { needs: null, open: openObject },
  'lmdb-string': { needs: 'lmdb', open: openLmdbString },
  'lmdb-object': { needs: 'lmdb', open: (ctx) => openLmdbObject(ctx, 'lmdb-object', {}) },
  'lmdb-object-structures': { needs: 'lmdb', open: (ctx) => openLmdbObject(ctx, 'lmdb-object-structures', { sharedStructuresKey: Symbol.for('structures') }) },
  'hub-string': { needs: null, open: openHubString },
  'hub-object': { needs: null, open: openHubObject },
  'nsc-string': { needs: 'node-shared-cache-x', open: openNscString },
  'nsc-object': { needs: 'node-shared-cache-x', open: openNscObject },
}

const MODULE_KEYS = { lmdb: 'lmdb', 'node-shared-cache-x': 'nsc' }

/**
 * Opens every store in `ids` (in order); returns { stores: { id: handle }, missing: { id: why } }
 * (a store whose package is not installed or does not load is missing, not an error).
 */
async function openStores(ids, ctx) {
  const stores = {}
  const missing = {}
  const modules = {}
  for (const id of ids) {
    const def = STORES[id]
    if (!def) throw new Error(`unknown store ${id}`)
    if (def.needs) {
      modules[def.needs] ??= optional(def.needs)
      const found = modules[def.needs]
      if (found.missing) {
        missing[id] = found.missing
        continue
      }
      ctx = { ...ctx, [MODULE_KEYS[def.needs]]: found.module }
    }
    stores[id] = await def.open(ctx)
  }
  return { stores, missing }
}

module.exports = { STORES, openStores, KEYS }
