'use strict'

// share-object/rate-limit: an express-rate-limit Store over SharedMap, so that every
// process of a host (cluster workers, pm2 instances) counts against one limit.
//
// A client's window is fixed by its first hit: increment() is SharedMap's atomic incr()
// with ttl = windowMs, and incr() gives a missing or expired key the ttl and leaves an
// existing key's expiry alone. The window's reset time is the key's expiry. The counters
// are numbers under `${prefix}${key}`.

const { coded, invalidArgType, outOfRange } = require('../lib/errors.js')
const { openStoreMap, deletePrefix } = require('../lib/store-map.js')

const DEFAULT_PREFIX = 'rl:'

class ShareObjectStore {
  /**
   * Tells express-rate-limit that hits counted by this store are seen by every other
   * instance of it (in this process and others): its double-count check then goes by
   * `prefix`.
   */
  localKeys = false

  /** Prepended to every key: give each limiter that shares a map its own. */
  prefix

  #map
  #owned
  #windowMs

  /**
   * `pathOrOptions`: the map's path, or `{ path, prefix?, ...SharedMapOptions }`, or
   * `{ map, prefix? }`: an open SharedMap, which the store uses and never closes.
   */
  constructor(pathOrOptions) {
    const { map, owned, own } = openStoreMap(pathOrOptions, ['prefix'])
    const prefix = own.prefix ?? DEFAULT_PREFIX
    if (typeof prefix !== 'string') {
      if (owned) map.close()
      throw invalidArgType('options.prefix', 'a string', prefix)
    }
    this.#map = map
    this.#owned = owned
    this.prefix = prefix
  }

  /** The SharedMap the counters live in. */
  get map() {
    return this.#map
  }

  /** The window in ms, from express-rate-limit's options (`undefined` before init()). */
  get windowMs() {
    return this.#windowMs
  }

  /** Called by express-rate-limit with its options: takes `windowMs`. */
  init(options) {
    const windowMs = options?.windowMs
    if (typeof windowMs !== 'number') throw invalidArgType('options.windowMs', 'a number of milliseconds', windowMs)
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) throw outOfRange('options.windowMs', 'must be a positive, finite number of milliseconds', windowMs)
    this.#windowMs = windowMs
  }

  #window() {
    if (this.#windowMs === undefined) {
      throw coded(Error, 'ERR_INVALID_STATE', `${this.#map.path}: ShareObjectStore.init({ windowMs }) must run before increment() (express-rate-limit calls it)`)
    }
    return this.#windowMs
  }

  // When the client's counter resets: its key's expiry.
  #resetTime(key) {
    const left = this.#map.getRemainingTTL(key)
    return new Date(Date.now() + (Number.isFinite(left) ? left : this.#window()))
  }

  /** Counts a hit: the client's hits in this window, and when the window ends. */
  async increment(key) {
    const k = this.prefix + key
    const windowMs = this.#window()
    const totalHits = this.#map.incr(k, 1, { ttl: windowMs })
    return { totalHits, resetTime: this.#resetTime(k) }
  }

  /** Takes one hit back (a skipped request), never below 0, keeping the window. */
  async decrement(key) {
    // update() with no ttl keeps the key's expiry; a missing key stays missing.
    this.#map.update(this.prefix + key, (hits) => (typeof hits === 'number' && hits > 0 ? hits - 1 : hits))
  }

  /** The client's hits and reset time, or `undefined` if it has none in this window. */
  async get(key) {
    const k = this.prefix + key
    const totalHits = this.#map.peek(k) // peek: a read never moves the window
    if (typeof totalHits !== 'number') return undefined
    return { totalHits, resetTime: this.#resetTime(k) }
  }

  /** Forgets a client's hits. */
  async resetKey(key) {
    this.#map.delete(this.prefix + key)
  }

  /**
   * Forgets every client's hits: the keys under this store's prefix (the whole map when
   * the prefix is ''). Hits counted meanwhile by other processes may survive.
   */
  async resetAll() {
    deletePrefix(this.#map, this.prefix)
  }

  /** Closes the map if the store opened it (a map passed as `options.map` stays open). */
  async shutdown() {
    if (this.#owned) this.#map.close()
  }
}

module.exports = { ShareObjectStore }
