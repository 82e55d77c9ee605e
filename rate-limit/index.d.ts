// Type definitions for share-object/rate-limit: an express-rate-limit Store over SharedMap.

/// <reference types="node" />

import type { SharedMap, SharedMapOptions } from '../index.js'

/** Options for {@link ShareObjectStore}: the map's path and SharedMap options, or an open map. */
export interface ShareObjectStoreOptions extends SharedMapOptions {
  /**
   * The map file, created if missing (every process that shares the limit opens the same
   * path with the same options). Required unless `map` is given.
   */
  path?: string
  /** An open SharedMap to use instead (then no `path` or map options): the store never closes it. */
  map?: SharedMap
  /** Prepended to every client key (default `'rl:'`): give each limiter sharing a map its own. */
  prefix?: string
}

/** A client's hits in the current window, and when the window ends. */
export interface ShareObjectStoreInfo {
  totalHits: number
  resetTime: Date
}

/**
 * An express-rate-limit `Store` whose counters live in a SharedMap: one limit for every
 * process on the host (cluster workers included).
 *
 * ```js
 * const { rateLimit } = require('express-rate-limit')
 * const { ShareObjectStore } = require('share-object/rate-limit')
 * app.use(rateLimit({ windowMs: 60_000, limit: 100, store: new ShareObjectStore({ path: 'limits.map' }) }))
 * ```
 *
 * A client's window starts at its first hit and lasts `windowMs` (a fixed window, as
 * express-rate-limit's MemoryStore): hits are counted with SharedMap's atomic `incr()`,
 * whose ttl a counter gets when it is created and keeps.
 */
export declare class ShareObjectStore {
  /** `path`, or `{ path, prefix?, ...SharedMapOptions }`, or `{ map, prefix? }`. */
  constructor(pathOrOptions: string | ShareObjectStoreOptions)
  /** `false`: hits counted here are seen by every other instance of the store, in every process. */
  readonly localKeys: false
  /** Prepended to every key (default `'rl:'`). */
  readonly prefix: string
  /** The SharedMap the counters live in. */
  readonly map: SharedMap
  /** The window in ms, once `init()` ran. */
  readonly windowMs: number | undefined

  /** Called by express-rate-limit with its options: takes `windowMs` (`ERR_OUT_OF_RANGE` unless positive and finite). */
  init(options: { windowMs: number }): void
  /** Counts a hit. Rejects with `ERR_INVALID_STATE` before `init()`. */
  increment(key: string): Promise<ShareObjectStoreInfo>
  /** Takes one hit back (never below 0), keeping the window. */
  decrement(key: string): Promise<void>
  /** The client's hits and reset time, or `undefined` when it has none in the current window. */
  get(key: string): Promise<ShareObjectStoreInfo | undefined>
  /** Forgets a client's hits. */
  resetKey(key: string): Promise<void>
  /** Forgets every client's hits under this store's prefix (the whole map when it is `''`). */
  resetAll(): Promise<void>
  /** Closes the map if the store opened it (a map given as `options.map` stays open). */
  shutdown(): Promise<void>
}
