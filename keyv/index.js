'use strict'

// share-object/keyv: a Keyv storage adapter over SharedMap, so that Keyv (and what is built
// on it: cacheable, cache-manager) keeps one cache for every process of a host.
//
// What Keyv 5 hands a store, and so what this adapter keeps:
// - Values: Keyv serialises `{ value, expires }` to a string (its default serializer)
//   before calling set(), and deserialises what get() returns. The adapter stores those
//   strings as they are (no second encoding). With Keyv's serialisation turned off, it gets
//   the objects themselves and stores them through the map's codec (`codec: 'v8'` keeps
//   Dates, Maps and Buffers).
// - Keys: Keyv prefixes them with `${namespace}:` and sets the store's `namespace`
//   property; clear() and iterator() keep to that namespace, as Keyv's own adapters do.
// - ttl: milliseconds, or `undefined` for none (Keyv turns 0 into undefined). The entry
//   expires in the map too, so an expired entry frees its space and is gone for every
//   process, not only for the Keyv that checks its `expires`.
// - Iteration: Keyv offers keyv.iterator() only for a store whose `opts.dialect` is one of
//   its own adapters' (see `opts` below).

const { EventEmitter } = require('node:events')
const { pathToFileURL } = require('node:url')
const { openStoreMap, deletePrefix } = require('../lib/store-map.js')

// Keyv 5 enables keyv.iterator() for a store only if `store.opts.dialect` is in its list
// ('sqlite', 'postgres', 'mysql', 'mongo', 'redis', 'valkey', 'etcd') or `store.opts.url`
// names one of them; it uses `dialect` for nothing else. A store of another kind has to
// borrow a name: we take 'sqlite', the nearest kind (a file on this host that its
// processes share).
const ITERABLE_DIALECT = 'sqlite'

// Keyv passes a number of ms or undefined; anything else it treats as no ttl (its own
// `expires` is then unset), and so do we. SharedMap refuses a negative or NaN ttl
// (ERR_OUT_OF_RANGE), which Keyv reports as a failed set.
function ttlOptions(ttl) {
  return typeof ttl === 'number' ? { ttl } : undefined
}

class KeyvShareObject extends EventEmitter {
  /**
   * Keyv sets this to its namespace: the keys it passes start with `${namespace}:`, and
   * clear() removes only those. `undefined` (a Keyv without namespace): clear() empties
   * the whole map.
   */
  namespace = undefined

  /** What Keyv reads from a store: `dialect` (see ITERABLE_DIALECT), `url`, and the path. */
  opts

  #map
  #owned

  /**
   * `pathOrOptions`: the map's path, or `{ path, ...SharedMapOptions }` (max, maxSize,
   * ttl, evict, updateAgeOnGet, codec, mode), or `{ map }`: an open SharedMap, which the
   * store uses and never closes.
   */
  constructor(pathOrOptions) {
    super()
    const { map, owned } = openStoreMap(pathOrOptions)
    this.#map = map
    this.#owned = owned
    const mapOptions = typeof pathOrOptions === 'string' ? {} : { ...pathOrOptions }
    delete mapOptions.map
    this.opts = {
      ...mapOptions,
      dialect: ITERABLE_DIALECT,
      url: map.path.startsWith('/') ? pathToFileURL(map.path).href : map.path,
      path: map.path,
    }
  }

  /** The SharedMap the store keeps its entries in (for watch(), getOrSet(), info()). */
  get map() {
    return this.#map
  }

  /** The stored value of `key` (the string Keyv serialised), or `undefined`. */
  async get(key) {
    return this.#map.get(key)
  }

  /** The stored values of `keys`, `undefined` for each one missing. */
  async getMany(keys) {
    return keys.map((key) => this.#map.get(key))
  }

  /** Stores `value` under `key`, expiring after `ttl` ms (none: the map's own ttl, if any). */
  async set(key, value, ttl) {
    const options = ttlOptions(ttl)
    this.#map.set(key, value, options)
    return true
  }

  /**
   * Stores every `{ key, value, ttl }`; returns, for each, whether it was stored. A failed
   * entry does not stop the others: its error is emitted as 'error' (Keyv forwards it to
   * its own listeners), or, when nobody listens, thrown once all were tried.
   */
  async setMany(entries) {
    const errors = []
    const results = entries.map(({ key, value, ttl }) => {
      try {
        const options = ttlOptions(ttl)
        this.#map.set(key, value, options)
        return true
      } catch (err) {
        errors.push(err)
        return false
      }
    })
    if (errors.length > 0 && this.listenerCount('error') === 0) {
      throw errors.length === 1 ? errors[0] : new AggregateError(errors, `${errors.length} of ${entries.length} entries could not be stored`)
    }
    for (const err of errors) this.emit('error', err)
    return results
  }

  /** Removes `key`; whether it had a value. */
  async delete(key) {
    return this.#map.delete(key)
  }

  /** Removes `keys`; whether any of them had a value (as @keyv/sqlite and @keyv/redis). */
  async deleteMany(keys) {
    let any = false
    for (const key of keys) any = this.#map.delete(key) || any
    return any
  }

  /** Whether `key` has a live value. */
  async has(key) {
    return this.#map.has(key)
  }

  /** Whether each of `keys` has a live value. */
  async hasMany(keys) {
    return keys.map((key) => this.#map.has(key))
  }

  /**
   * Removes the entries of this store's namespace (the keys starting `${namespace}:`), or
   * every entry when it has none. Sets made meanwhile by other processes may survive.
   */
  async clear() {
    deletePrefix(this.#map, this.namespace ? `${this.namespace}:` : '')
  }

  /**
   * Yields `[key, value]` for the live entries of `namespace` (every entry without one),
   * keys with their prefix, as Keyv expects. Entries set or removed meanwhile may or may
   * not be seen; each is seen at most once.
   */
  async *iterator(namespace) {
    const prefix = namespace ? `${namespace}:` : ''
    for (const [key, value] of this.#map.entries()) {
      if (key.startsWith(prefix)) yield [key, value]
    }
  }

  /** Closes the map if the store opened it (a map passed as `options.map` stays open). */
  async disconnect() {
    if (this.#owned) this.#map.close()
  }
}

module.exports = { KeyvShareObject }
