// Type definitions for share-object/keyv: a Keyv storage adapter over SharedMap.

/// <reference types="node" />

import { EventEmitter } from 'node:events'
import type { SharedMap, SharedMapOptions } from '../index.js'

/** Options for {@link KeyvShareObject}: the map's path and SharedMap options, or an open map. */
export interface KeyvShareObjectOptions extends SharedMapOptions {
  /**
   * The map file, created if missing (every process that shares the cache opens the same
   * path with the same options). Required unless `map` is given.
   */
  path?: string
  /** An open SharedMap to use instead (then no `path` or map options): the store never closes it. */
  map?: SharedMap
}

/**
 * A Keyv store whose entries live in a SharedMap: one cache for every process on the host.
 *
 * ```js
 * const { Keyv } = require('keyv')
 * const { KeyvShareObject } = require('share-object/keyv')
 * const keyv = new Keyv({ store: new KeyvShareObject({ path: 'cache.map', max: 10_000 }) })
 * ```
 *
 * Keyv serialises values to strings before they reach the store (its default), and the
 * store keeps those strings as they are. It passes keys prefixed with its namespace; the
 * store's `clear()` and `iterator()` keep to that namespace. A ttl expires the entry in the
 * map itself, for every process. Errors (a key over 1024 UTF-8 bytes, a full map) reject
 * with a `ShareObjectError` carrying a `code`, which Keyv turns into a failed set and an
 * 'error' event.
 */
export declare class KeyvShareObject extends EventEmitter {
  /** `path`, or `{ path, ...SharedMapOptions }`, or `{ map }`. */
  constructor(pathOrOptions: string | KeyvShareObjectOptions)
  /**
   * Set by Keyv: the keys it passes start with `${namespace}:`, and `clear()` removes only
   * those. Without a namespace, `clear()` empties the whole map.
   */
  namespace: string | undefined
  /**
   * What Keyv reads from a store: the options given, `path`, `url` (a `file:` URL of the
   * map), and `dialect: 'sqlite'` — Keyv 5 offers `keyv.iterator()` only for a store whose
   * dialect is one of its own adapters', so the store borrows the nearest kind.
   */
  opts: { dialect: string; url: string; path: string; [option: string]: any }
  /** The SharedMap the entries live in (for `watch()`, `getOrSet()`, `info()`). */
  readonly map: SharedMap

  /** The stored value (the string Keyv serialised), or `undefined`. */
  get(key: string): Promise<any>
  /** The stored values, `undefined` for each key without one. */
  getMany(keys: string[]): Promise<any[]>
  /**
   * Stores the value, expiring after `ttl` ms (`undefined`: the map's own `ttl`, if any).
   * Resolves to `true`; rejects on a bad key or ttl (`ERR_INVALID_ARG_VALUE`,
   * `ERR_OUT_OF_RANGE`) or a full map (`ERR_MAP_FULL`, after expired entries were purged).
   */
  set(key: string, value: any, ttl?: number): Promise<boolean>
  /**
   * Stores every entry; resolves to a `boolean[]`: whether each was stored (typed `any`:
   * Keyv's `KeyvStoreAdapter` declares `Promise<void>`, though `keyv.setMany()` returns
   * what the store resolves to). A failed entry's error is emitted as 'error' (Keyv
   * forwards it), or thrown after all were tried when nobody listens.
   */
  setMany(entries: Array<{ key: string; value: any; ttl?: number }>): Promise<any>
  /** Removes the key; whether it had a value. */
  delete(key: string): Promise<boolean>
  /** Removes the keys; whether any of them had a value (as @keyv/sqlite and @keyv/redis). */
  deleteMany(keys: string[]): Promise<boolean>
  /** Whether the key has a live value. */
  has(key: string): Promise<boolean>
  /** Whether each key has a live value. */
  hasMany(keys: string[]): Promise<boolean[]>
  /** Removes the namespace's entries (every entry without a namespace). */
  clear(): Promise<void>
  /** `[key, value]` for the live entries of `namespace` (all without one), keys with their prefix. */
  iterator(namespace?: string): AsyncGenerator<[string, any], void, unknown>
  /** Closes the map if the store opened it (a map given as `options.map` stays open). */
  disconnect(): Promise<void>
}
