'use strict'

// The SharedMap behind the store adapters (share-object/keyv, share-object/rate-limit):
// opened from a path and SharedMap options, or lent by the caller (who then keeps closing
// it). A full map that does not evict purges its expired entries by itself before it
// refuses a write (src/map/write.rs), so the adapters need no retry of their own.

const { SharedMap } = require('./shared-map.js')
const { invalidArgType, invalidArgValue } = require('./errors.js')

/**
 * Opens the map a store adapter works on. `pathOrOptions` is a path, or an object with
 * `path` and SharedMap options, or with `map` (an open SharedMap). Keys named in `ownKeys`
 * are the adapter's own options: they are returned in `own`, never passed to the map.
 * Returns `{ map, owned, own }`; `owned` says whether the adapter opened (and closes) it.
 */
function openStoreMap(pathOrOptions, ownKeys = []) {
  if (typeof pathOrOptions === 'string') {
    return { map: SharedMap.open(pathOrOptions), owned: true, own: {} }
  }
  if (pathOrOptions === null || typeof pathOrOptions !== 'object') {
    throw invalidArgType('options', 'a path, or an object with a path or a map', pathOrOptions)
  }
  const { path, map, ...rest } = pathOrOptions
  const own = {}
  const mapOptions = {}
  for (const [key, value] of Object.entries(rest)) {
    if (ownKeys.includes(key)) own[key] = value
    else mapOptions[key] = value
  }
  if (map !== undefined) {
    if (!(map instanceof SharedMap)) throw invalidArgType('options.map', 'a SharedMap', map)
    const extra = Object.keys(mapOptions).concat(path === undefined ? [] : ['path'])
    if (extra.length > 0) {
      throw invalidArgValue('options', `must not give ${extra.join(', ')} with a map (the map is open: its options are fixed)`, extra)
    }
    return { map, owned: false, own }
  }
  if (path === undefined) throw invalidArgType('options.path', 'a string (or pass options.map)', path)
  return { map: SharedMap.open(path, mapOptions), owned: true, own }
}

/**
 * Deletes the keys of `map` that start with `prefix` (an adapter's namespace); with an empty
 * prefix, every key (`clear()`).
 */
function deletePrefix(map, prefix) {
  if (prefix === '') {
    map.clear()
    return
  }
  for (const key of map.keys()) {
    if (key.startsWith(prefix)) map.delete(key)
  }
}

module.exports = { openStoreMap, deletePrefix }
