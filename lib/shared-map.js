'use strict'

// SharedMap: the public face of a map segment (src/map/). The native side keeps the hash
// map in shared memory; this file adds argument checks, the codec, lru-cache's API shape,
// update()'s and getOrSet()'s JS halves, and change notification to listeners.

const path = require('node:path')
const native = require('./native.js')
const { coded, fromNative, invalidArgType, invalidArgValue, outOfRange, timeoutError, closedError, abortError } = require('./errors.js')
const { INTERNAL, MAX_TIMER_MS, fast, call, checkBytes, longTimeout, clearLongTimeout, checkFd, checkPath, checkTimeout, checkSignal, checkOptions, checkFunction } = require('./common.js')
const { TAG, CODEC_ID, Codec, resolveCodec } = require('./codec.js')

// The largest maxSize (a quarter of the format's 2^39-byte heap).
const MAX_SIZE_LIMIT = 2 ** 37
// Change-log ops (src/map/log.rs).
const OP = { SET: 1, DELETE: 2, CLEAR: 3, EVICT: 4, EXPIRE: 5, UNCLAIM: 6 }
// How often a getOrSet() waiting for another process's result looks again by itself (a
// claimant that died is taken over).
const CLAIM_POLL_MS = 100
// How long an idle notifier thread lingers before it is stopped.
const NOTIFIER_LINGER_MS = 250

// Where the native side leaves the tag of the value a call returns (meta[0]), a getOrSet()
// claim's state (meta[1]), and an entry's identity for update() (meta[2..6]: heap offset
// low and high, generation low and high, present): bound once per thread.
const META = new Uint32Array(8)
fast.mapBindMeta(META)
// The per-call native functions, taken out of `fast` once: `fast` has many properties, which
// makes every lookup on it a slow (dictionary) one.
const { mapGet, mapHas, mapSet, mapDelete, mapIncr, mapClaim, mapPeekIdentity, mapCompareSet, mapCompareDelete, mapFulfill, mapShardEntries } = fast

const finalizer = new FinalizationRegistry((id) => native.mapClose(id))

function checkKey(key, at) {
  if (typeof key !== 'string') throw invalidArgType('key', 'a string', key, at)
  if (key.length === 0) throw invalidArgValue('key', 'must not be empty', key, at)
  if (!key.isWellFormed()) throw invalidArgValue('key', 'must be well-formed Unicode (it has a lone surrogate)', key, at)
  return key
}

function checkTtl(name, v, at) {
  if (v === undefined) return undefined
  if (typeof v !== 'number') throw invalidArgType(name, 'a number of milliseconds', v, at)
  if (Number.isNaN(v) || v < 0) throw outOfRange(name, 'must be a non-negative number of milliseconds (0: no expiry)', v, at)
  return v === Infinity ? 0 : Math.ceil(v)
}

function checkBool(name, v, at) {
  if (v !== undefined && typeof v !== 'boolean') throw invalidArgType(name, 'a boolean', v, at)
  return v
}

// `at`: the path being opened, named in the messages of the option checks that take it.
function mapOptions(options, at) {
  const o = checkOptions('options', options, ['codec', 'create', 'readOnly', 'mode', 'max', 'maxSize', 'ttl', 'evict', 'updateAgeOnGet'], at)
  const codec = o.codec === undefined ? undefined : resolveCodec(o.codec, 'options.codec', at)
  const readOnly = checkBool('options.readOnly', o.readOnly, at)
  const out = {
    // A read-only handle never creates the file unless told to (it could not write it).
    create: checkBool('options.create', o.create, at) ?? (readOnly ? false : undefined),
    readOnly,
    mode: o.mode,
    max: checkBytes('options.max', o.max, at),
    maxSize: checkBytes('options.maxSize', o.maxSize, at),
    ttl: checkTtl('options.ttl', o.ttl, at),
    evict: checkBool('options.evict', o.evict, at),
    updateAgeOnGet: checkBool('options.updateAgeOnGet', o.updateAgeOnGet, at),
    codec: codec?.id,
    codecName: codec?.customName,
  }
  if (out.mode !== undefined && (!Number.isInteger(out.mode) || out.mode < 0 || out.mode > 0o777)) {
    throw outOfRange('options.mode', 'must be an integer from 0 to 0o777', out.mode, at)
  }
  if (out.maxSize !== undefined && (out.maxSize < 1 || out.maxSize > MAX_SIZE_LIMIT)) {
    throw outOfRange('options.maxSize', `must be from 1 to ${MAX_SIZE_LIMIT} bytes`, out.maxSize, at)
  }
  if (out.max === 0) out.max = undefined // lru-cache: 0 means no limit
  return { native: out, codec }
}

function ttlOption(options, at) {
  const o = checkOptions('options', options, ['ttl'], at)
  return checkTtl('options.ttl', o.ttl, at)
}

// A codec for a handle that did not pass the custom codec its map was created with: it
// reads every built-in form, and refuses to write (mixing encodings) or to decode custom.
class MissingCustomCodec extends Codec {
  constructor(name) {
    super(name ? `custom (${name})` : 'custom', CODEC_ID.custom)
  }

  encode() {
    throw coded(Error, 'ERR_CODEC_ENCODE', `This map stores values with ${this.name === 'custom' ? 'a custom codec' : `the custom codec '${this.name.slice(8, -1)}'`}: open it with that codec to write`)
  }
}

function codecOf(info) {
  switch (info.codec) {
    case CODEC_ID.json:
      return resolveCodec('json')
    case CODEC_ID.v8:
      return resolveCodec('v8')
    case CODEC_ID.custom:
      return new MissingCustomCodec(info.codecName)
    default:
      return resolveCodec('default')
  }
}

class SharedMap {
  #id
  #path
  #codec
  #readOnly
  #closed = false
  #updating = false
  #claims = new Set() // keys this handle is computing for getOrSet()
  #inflight = new Map() // key -> this handle's getOrSet() computation of it
  #watchers = new Set()
  #keyWaiters = new Map() // key -> Set of waiters
  #shardOf = new Map() // key -> shard (cache for watched keys)
  #notifierOn = false
  #lingerTimer = null
  #keepAlive = null

  constructor(key, id, codec) {
    if (key !== INTERNAL) {
      throw coded(TypeError, 'ERR_ILLEGAL_CONSTRUCTOR', 'Use SharedMap.open(path), SharedMap.anonymous() or SharedMap.fromFd(fd)')
    }
    this.#id = id
    try {
      const info = native.mapInfo(id)
      this.#path = info.path
      this.#readOnly = info.readOnly
      this.#codec = codec ?? codecOf(info)
    } catch (err) {
      native.mapClose(id)
      throw fromNative(err)
    }
    finalizer.register(this, id, this)
  }

  /** Opens the map at `path`, creating it if needed. */
  static open(file, options) {
    checkPath(file)
    const resolved = path.resolve(file)
    const { native: opts, codec } = mapOptions(options, resolved)
    const id = call(() => native.mapOpen(resolved, opts))
    return new SharedMap(INTERNAL, id, codec)
  }

  /** A new unnamed map (memfd) to share with child processes through `fd`. */
  static anonymous(options) {
    const { native: opts, codec } = mapOptions(options, 'memfd')
    const id = call(() => native.mapAnonymous(opts))
    return new SharedMap(INTERNAL, id, codec)
  }

  /** Opens the map behind an inherited file descriptor (opened afresh). */
  static fromFd(fd, options) {
    checkFd(fd)
    const { native: opts, codec } = mapOptions(options, `fd:${fd}`)
    const id = call(() => native.mapFromFd(fd, opts))
    return new SharedMap(INTERNAL, id, codec)
  }

  /** Removes a map file; refuses (ERR_NOT_A_SEGMENT / ERR_WRONG_KIND) any other file. */
  static unlink(file) {
    checkPath(file)
    call(() => native.mapUnlink(path.resolve(file)))
  }

  #check() {
    if (this.#closed) throw closedError(this.#path)
  }

  #checkWrite() {
    if (this.#closed) throw closedError(this.#path)
    if (this.#updating) {
      throw coded(Error, 'ERR_INVALID_STATE', `${this.#path}: the function given to update() must not write to its map`)
    }
  }

  #decode(raw) {
    const tag = META[0]
    return tag === TAG.JSON || tag >= TAG.V8 ? this.#codec.decode(tag, raw) : raw
  }

  /** The map's path (`memfd:…` for anonymous maps). */
  get path() {
    return this.#path
  }

  /** Whether `close()` was called. */
  get closed() {
    return this.#closed
  }

  /**
   * A descriptor of the map to pass to a child through `spawn`'s `stdio` (the child opens
   * it with `SharedMap.fromFd`). Opened on first use and closed with the handle; it holds
   * none of this handle's locks.
   */
  get fd() {
    this.#check()
    return call(() => native.mapFd(this.#id))
  }

  /** Whether the handle was opened with `readOnly: true`. */
  get readOnly() {
    return this.#readOnly
  }

  /** The number of live entries, the same in every process. */
  get size() {
    this.#check()
    return call(() => native.mapSize(this.#id))
  }

  /** The options the map was created with, and its counts. */
  info() {
    this.#check()
    const i = call(() => native.mapInfo(this.#id))
    return {
      path: i.path,
      readOnly: i.readOnly,
      max: i.max === 0 ? Infinity : i.max,
      maxSize: i.maxSize,
      ttl: i.ttl,
      evict: i.evict,
      updateAgeOnGet: i.updateAgeOnGet,
      codec: this.#codec.name,
      size: i.size,
      pending: i.pending,
      bytes: i.bytes,
      garbageBytes: i.garbage,
      heapBytes: i.heapBytes,
      heapLimit: i.heapLimit,
      fileBytes: i.fileBytes,
      shards: i.shards,
    }
  }

  /** The value of `key`, or `undefined`. Marks it recently used. */
  get(key) {
    if (this.#closed) throw closedError(this.#path)
    let raw
    try {
      raw = mapGet(this.#id, key, true)
    } catch (err) {
      throw this.#keyError(err, key)
    }
    return raw === undefined ? undefined : this.#decode(raw)
  }

  /** Like `get`, without marking the entry recently used or refreshing its age. */
  peek(key) {
    if (this.#closed) throw closedError(this.#path)
    let raw
    try {
      raw = mapGet(this.#id, key, false)
    } catch (err) {
      throw this.#keyError(err, key)
    }
    return raw === undefined ? undefined : this.#decode(raw)
  }

  /** Whether `key` has a value (does not mark it used). */
  has(key) {
    if (this.#closed) throw closedError(this.#path)
    try {
      return mapHas(this.#id, key)
    } catch (err) {
      throw this.#keyError(err, key)
    }
  }

  /**
   * Stores `value` under `key` (through the codec); `options.ttl` in ms overrides the map's
   * ttl (0: none). Setting `undefined` deletes the key, as lru-cache does. Returns the map.
   */
  set(key, value, options) {
    this.#checkWrite()
    checkKey(key, this.#path)
    const ttl = options === undefined ? undefined : ttlOption(options, this.#path)
    if (value === undefined) {
      this.delete(key)
      return this
    }
    const payload = this.#codec.encode(value)
    try {
      mapSet(this.#id, key, this.#codec.tag, payload, ttl)
    } catch (err) {
      throw this.#keyError(err, key)
    }
    return this
  }

  /** Removes `key`; whether it had a value. */
  delete(key) {
    this.#checkWrite()
    checkKey(key, this.#path)
    try {
      return mapDelete(this.#id, key)
    } catch (err) {
      throw this.#keyError(err, key)
    }
  }

  /** Removes every entry (shard by shard: a set made meanwhile may survive). */
  clear() {
    this.#checkWrite()
    call(() => native.mapClear(this.#id))
  }

  /** Removes the entries whose ttl has passed; returns how many. */
  purgeStale() {
    this.#checkWrite()
    return call(() => native.mapPurgeStale(this.#id))
  }

  /**
   * Milliseconds until `key` expires: `Infinity` if it has no ttl, 0 if it has no value
   * (as lru-cache's getRemainingTTL).
   */
  getRemainingTTL(key) {
    this.#check()
    checkKey(key, this.#path)
    const expires = call(() => native.mapExpiry(this.#id, key))
    if (expires < 0) return 0
    if (expires === 0) return Infinity
    return Math.max(0, expires - Date.now())
  }

  /**
   * Adds `by` (default 1) to the number at `key`, atomically across processes, and returns
   * the result. A missing or expired key starts at 0 and gets `options.ttl` (else the map's
   * ttl); an existing key keeps its expiry (a rate limiter's window). A value that is not a
   * number: ERR_NOT_A_NUMBER.
   */
  incr(key, by = 1, options) {
    this.#checkWrite()
    checkKey(key, this.#path)
    if (typeof by !== 'number') throw invalidArgType('by', 'a number', by, this.#path)
    if (!Number.isFinite(by)) throw outOfRange('by', 'must be a finite number', by, this.#path)
    const ttl = options === undefined ? undefined : ttlOption(options, this.#path)
    try {
      return mapIncr(this.#id, key, by, ttl)
    } catch (err) {
      throw this.#keyError(err, key)
    }
  }

  /**
   * Read-modify-write, atomic across processes: calls `fn(current)` (the value, or
   * `undefined`) and stores what it returns (`undefined` deletes the key) only if the key
   * still holds what `fn` saw; otherwise `fn` runs again with the newer value (so keep it
   * free of side effects). Returns what was stored. `fn` must be synchronous and must not
   * write to this map. No lock is held while it runs.
   */
  update(key, fn, options) {
    this.#checkWrite()
    checkKey(key, this.#path)
    checkFunction('fn', fn, this.#path)
    const ttl = options === undefined ? undefined : ttlOption(options, this.#path)
    for (;;) {
      let raw
      try {
        raw = mapPeekIdentity(this.#id, key)
      } catch (err) {
        throw this.#keyError(err, key)
      }
      const present = META[6] === 1
      const heap = present ? META[3] * 2 ** 32 + META[2] : -1
      const gen = present ? META[5] * 2 ** 32 + META[4] : 0
      const current = raw === undefined ? undefined : this.#decode(raw)
      this.#updating = true
      let next
      try {
        next = fn(current)
      } finally {
        this.#updating = false
      }
      if (next !== null && (typeof next === 'object' || typeof next === 'function') && typeof next.then === 'function') {
        throw coded(TypeError, 'ERR_INVALID_RETURN_VALUE', `${this.#path}: the function given to update() must return the new value, not a promise`)
      }
      let stored
      try {
        if (next === undefined) {
          stored = mapCompareDelete(this.#id, key, heap, gen)
        } else {
          const payload = this.#codec.encode(next)
          stored = mapCompareSet(this.#id, key, heap, gen, this.#codec.tag, payload, ttl)
        }
      } catch (err) {
        throw this.#keyError(err, key)
      }
      if (stored) return next
    }
  }

  /**
   * The value of `key`; if it has none, `fn(key)` computes it (awaited) and it is stored.
   * When several processes miss the same key at once, one runs `fn` and the others wait
   * for its result. A runner that throws rejects its own call and lets a waiter try; one
   * that dies is taken over. Options: `ttl`, `timeout` (ms, for the whole call), `signal`.
   */
  async getOrSet(key, fn, options) {
    this.#checkWrite()
    checkKey(key, this.#path)
    checkFunction('fn', fn, this.#path)
    const o = checkOptions('options', options, ['ttl', 'timeout', 'signal'], this.#path)
    const ttl = checkTtl('options.ttl', o.ttl, this.#path)
    const timeout = checkTimeout('options.timeout', o.timeout, this.#path)
    const signal = checkSignal(o.signal, this.#path)
    const hit = this.get(key)
    if (hit !== undefined) return hit
    // A computation of this key already running in this handle: share its result (the
    // claim belongs to the handle, so a second call would otherwise compute again).
    const running = this.#inflight.get(key)
    if (running) {
      try {
        return await running
      } catch {
        // That computation failed: try for ourselves below.
      }
    }
    const deadline = timeout === undefined ? Infinity : performance.now() + timeout
    for (;;) {
      this.#check()
      if (signal?.aborted) throw abortError(signal)
      let raw
      try {
        raw = mapClaim(this.#id, key)
      } catch (err) {
        throw this.#keyError(err, key)
      }
      const state = META[1]
      if (state === 0) return this.#decode(raw)
      if (state === 2 && !this.#inflight.has(key)) {
        const run = this.#runClaim(key, fn, ttl)
        this.#inflight.set(key, run)
        try {
          return await run
        } finally {
          if (this.#inflight.get(key) === run) this.#inflight.delete(key)
        }
      }
      const left = deadline - performance.now()
      if (left <= 0) throw timeoutError(this.#path, timeout, `another process to compute key ${JSON.stringify(key)}`)
      await this.#waitKey(key, Math.min(left, CLAIM_POLL_MS), signal, true)
    }
  }

  async #runClaim(key, fn, ttl) {
    this.#claims.add(key)
    let value
    try {
      value = await fn(key)
    } catch (err) {
      this.#dropClaim(key)
      throw err
    }
    if (!this.#claims.delete(key)) return value // closed meanwhile: the claim went with it
    if (value === undefined) {
      this.#dropClaim(key)
      return value
    }
    try {
      // Stored only over this handle's own claim: a set or delete made meanwhile wins.
      const payload = this.#codec.encode(value)
      mapFulfill(this.#id, key, this.#codec.tag, payload, ttl)
    } catch (err) {
      this.#dropClaim(key)
      throw this.#keyError(err, key)
    }
    return value
  }

  #dropClaim(key) {
    this.#claims.delete(key)
    if (this.#closed) return
    try {
      native.mapUnclaim(this.#id, key)
    } catch {
      // The claim stays; its waiters take it over once this handle closes or dies.
    }
  }

  /** Iterates `[key, value]` for every live entry (see README: what iteration promises). */
  *entries() {
    for (const [key, value] of this.#iterate(true)) yield [key, value]
  }

  /** Iterates every live key. */
  *keys() {
    for (const [key] of this.#iterate(false)) yield key
  }

  /** Iterates every live value. */
  *values() {
    for (const [, value] of this.#iterate(true)) yield value
  }

  [Symbol.iterator]() {
    return this.entries()
  }

  /** Calls `fn(value, key, map)` for every live entry, as Map's forEach. */
  forEach(fn, thisArg) {
    checkFunction('fn', fn, this.#path)
    for (const [key, value] of this.#iterate(true)) fn.call(thisArg, value, key, this)
  }

  *#iterate(wantValues) {
    this.#check()
    const shards = call(() => native.mapShards(this.#id))
    for (let s = 0; s < shards; s++) {
      this.#check()
      const [keys, values, tags] = call(() => mapShardEntries(this.#id, s, wantValues))
      for (let i = 0; i < keys.length; i++) {
        if (!wantValues) {
          yield [keys[i]]
          continue
        }
        const tag = tags[i]
        yield [keys[i], tag === TAG.JSON || tag >= TAG.V8 ? this.#codec.decode(tag, values[i]) : values[i]]
      }
    }
  }

  /**
   * Calls `listener(value, key)` after changes to `key` — or, for a prefix (a string ending
   * in `*`, or `{ prefix }`), to every key starting with it — by any process; `value` is
   * `undefined` when the key was deleted, evicted, expired (when purged) or cleared.
   * Changes that come faster than the listener runs are coalesced: it sees the latest
   * value. Returns a function that stops watching. Keeps the process alive unless
   * `{ ref: false }`.
   */
  watch(keyOrPrefix, listener, options) {
    this.#check()
    const target = watchTarget(keyOrPrefix, this.#path)
    checkFunction('listener', listener, this.#path)
    const o = checkOptions('options', options, ['onError', 'ref'], this.#path)
    if (o.onError !== undefined) checkFunction('options.onError', o.onError, this.#path)
    this.#drain() // changes made before this call are not this watcher's
    const watcher = {
      key: target.key,
      prefix: target.prefix,
      listener,
      onError: o.onError,
      ref: o.ref === undefined ? true : Boolean(o.ref),
      known: null,
    }
    if (watcher.prefix !== undefined) {
      watcher.known = new Set()
      for (const key of this.keys()) if (key.startsWith(watcher.prefix)) watcher.known.add(key)
    }
    this.#watchers.add(watcher)
    try {
      this.#listenersChanged()
    } catch (err) {
      this.#watchers.delete(watcher)
      throw err
    }
    return () => {
      if (this.#watchers.delete(watcher)) this.#listenersChanged()
    }
  }

  /**
   * Resolves with the value of `key` after its next change by any process (`undefined` if
   * it was removed). Options: `timeout` (ERR_TIMEOUT), `signal`, `ref`.
   */
  waitForChange(key, options) {
    try {
      this.#check()
      checkKey(key, this.#path)
      const o = checkOptions('options', options, ['timeout', 'signal', 'ref'], this.#path)
      const timeout = checkTimeout('options.timeout', o.timeout, this.#path)
      const signal = checkSignal(o.signal, this.#path)
      if (signal?.aborted) return Promise.reject(abortError(signal))
      this.#drain()
      return this.#waitKey(key, timeout, signal, o.ref === undefined ? true : Boolean(o.ref), true)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  // Resolves on the next change of `key` (with its value when `wantValue`), or when
  // `ms` pass (undefined: never), or rejects when `signal` aborts or the handle closes.
  #waitKey(key, ms, signal, ref, strict = false) {
    return new Promise((resolve, reject) => {
      const waiter = { key, resolve, reject, ref: ref !== false, timer: null, signal, onAbort: null }
      let set = this.#keyWaiters.get(key)
      if (!set) this.#keyWaiters.set(key, (set = new Set()))
      set.add(waiter)
      try {
        this.#listenersChanged()
      } catch (err) {
        this.#dropWaiter(waiter)
        throw err
      }
      if (ms !== undefined) {
        waiter.timer = longTimeout(
          () => {
            if (!this.#dropWaiter(waiter)) return
            if (strict) reject(timeoutError(this.#path, ms, `a change of key ${JSON.stringify(key)}`))
            else resolve(undefined)
          },
          ms,
          waiter.ref,
        )
      }
      if (signal) {
        waiter.onAbort = () => {
          if (this.#dropWaiter(waiter)) reject(abortError(signal))
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
    })
  }

  #dropWaiter(waiter) {
    const set = this.#keyWaiters.get(waiter.key)
    if (!set || !set.delete(waiter)) return false
    if (set.size === 0) this.#keyWaiters.delete(waiter.key)
    clearLongTimeout(waiter.timer)
    if (waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort)
    this.#listenersChanged()
    return true
  }

  // Starts or stops the notifier thread and the keep-alive to match the listeners.
  #listenersChanged() {
    if (this.#closed) return
    const any = this.#watchers.size > 0 || this.#keyWaiters.size > 0
    if (any && !this.#notifierOn) {
      call(() => native.mapWatchStart(this.#id))
      call(() => native.mapStartNotifier(this.#id, () => this.#onNotify()))
      this.#notifierOn = true
    }
    let ref = false
    for (const w of this.#watchers) ref ||= w.ref
    for (const set of this.#keyWaiters.values()) for (const w of set) ref ||= w.ref
    if (ref && !this.#keepAlive) {
      this.#keepAlive = setInterval(() => {}, MAX_TIMER_MS)
    } else if (!ref && this.#keepAlive) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = null
    }
    if (any) {
      if (this.#lingerTimer) {
        clearTimeout(this.#lingerTimer)
        this.#lingerTimer = null
      }
    } else if (this.#notifierOn && !this.#lingerTimer) {
      this.#lingerTimer = setTimeout(() => {
        this.#lingerTimer = null
        if (!this.#closed && this.#watchers.size === 0 && this.#keyWaiters.size === 0) {
          native.mapStopNotifier(this.#id)
          this.#notifierOn = false
        }
      }, NOTIFIER_LINGER_MS)
      this.#lingerTimer.unref()
    }
  }

  // Delivers the changes logged since the last look (before a new listener registers, so
  // that it hears only of later ones).
  #drain() {
    if (this.#notifierOn) this.#onNotify()
  }

  #shard(key) {
    let s = this.#shardOf.get(key)
    if (s === undefined) {
      s = native.mapShardOf(this.#id, key)
      if (this.#shardOf.size > 10000) this.#shardOf.clear()
      this.#shardOf.set(key, s)
    }
    return s
  }

  // Runs on the JS thread after changes (coalesced).
  #onNotify() {
    if (this.#closed) return
    let log
    try {
      log = native.mapChanges(this.#id)
    } catch (err) {
      this.#reportError(fromNative(err))
      return
    }
    // Last op per key; whole shards cleared or lapped (their watched keys are re-read).
    const touched = new Map()
    const shards = new Set(log.lost)
    for (let i = 0; i < log.ops.length; i++) {
      if (log.ops[i] === OP.CLEAR) shards.add(log.shards[i])
      else touched.set(log.keys[i], log.ops[i])
    }
    if (shards.size > 0) {
      for (const key of this.#keyWaiters.keys()) if (shards.has(this.#shard(key))) touched.set(key, OP.SET)
      for (const w of this.#watchers) {
        if (w.key !== undefined && shards.has(this.#shard(w.key))) touched.set(w.key, OP.SET)
        if (w.known) for (const key of w.known) if (shards.has(this.#shard(key))) touched.set(key, OP.DELETE)
      }
      if ([...this.#watchers].some((w) => w.prefix !== undefined)) {
        for (const s of log.lost) {
          try {
            const [keys] = mapShardEntries(this.#id, s, false)
            for (const key of keys) if (!touched.has(key)) touched.set(key, OP.SET)
          } catch (err) {
            this.#reportError(fromNative(err))
          }
        }
      }
    }
    for (const [key, op] of touched) {
      const waiters = this.#keyWaiters.get(key)
      const interested = [...this.#watchers].filter((w) => (w.key !== undefined ? w.key === key : key.startsWith(w.prefix)))
      if (!waiters && interested.length === 0) continue
      let value
      let failure = null
      try {
        value = this.peek(key)
      } catch (err) {
        failure = err
      }
      if (waiters) {
        for (const waiter of [...waiters]) {
          if (!this.#dropWaiter(waiter)) continue
          if (failure) waiter.reject(failure)
          else waiter.resolve(value)
        }
      }
      if (op === OP.UNCLAIM) continue // a claim given up is not a change of value
      for (const w of interested) {
        if (!this.#watchers.has(w)) continue
        if (failure) {
          if (w.onError) callListener(w.onError, failure)
          continue
        }
        if (w.known) {
          if (value === undefined) {
            if (!w.known.delete(key) && op !== OP.DELETE && op !== OP.EVICT && op !== OP.EXPIRE) continue
          } else {
            w.known.add(key)
          }
        }
        callListener(w.listener, value, key)
      }
    }
  }

  #reportError(err) {
    for (const w of [...this.#watchers]) if (w.onError) callListener(w.onError, err)
  }

  // A native error about a key, with the key in the message.
  // The error of a per-key native call. get(), peek() and has() leave the key's checks to
  // the native side, which refuses every key checkKey() refuses (a non-string, an empty
  // string, a lone surrogate): checkKey() runs here, so such a key gets its usual error.
  #keyError(err, key) {
    checkKey(key, this.#path)
    const e = fromNative(err)
    if (typeof e?.message === 'string' && !e.message.startsWith(this.#path)) {
      e.message = `${this.#path}: key ${JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}…` : key)}: ${e.message}`
    }
    return e
  }

  /** Closes the handle: pending waits reject with ERR_CLOSED, claims are given up. */
  close() {
    if (this.#closed) return
    for (const key of this.#claims) {
      try {
        native.mapUnclaim(this.#id, key)
      } catch {
        // Closing removes this handle's liveness: its claims are taken over anyway.
      }
    }
    this.#claims.clear()
    this.#closed = true
    finalizer.unregister(this)
    const err = closedError(this.#path)
    for (const set of this.#keyWaiters.values()) {
      for (const waiter of set) {
        clearLongTimeout(waiter.timer)
        if (waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort)
        waiter.reject(err)
      }
    }
    this.#keyWaiters.clear()
    this.#watchers.clear()
    if (this.#keepAlive) clearInterval(this.#keepAlive)
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer)
    this.#keepAlive = this.#lingerTimer = null
    native.mapClose(this.#id)
  }

  [Symbol.dispose]() {
    this.close()
  }

  get [Symbol.toStringTag]() {
    return 'SharedMap'
  }
}

function watchTarget(keyOrPrefix, at) {
  if (typeof keyOrPrefix === 'string') {
    if (keyOrPrefix.endsWith('*')) return { prefix: keyOrPrefix.slice(0, -1) }
    checkKey(keyOrPrefix, at)
    return { key: keyOrPrefix }
  }
  if (keyOrPrefix !== null && typeof keyOrPrefix === 'object') {
    if (typeof keyOrPrefix.prefix === 'string') return { prefix: keyOrPrefix.prefix }
    if (typeof keyOrPrefix.key === 'string') return { key: checkKey(keyOrPrefix.key, at) }
  }
  throw invalidArgType('keyOrPrefix', "a key, a prefix ending in '*', { key } or { prefix }", keyOrPrefix, at)
}

// Calls a listener; what it throws is an uncaught exception (as from an event listener),
// after the other listeners have had this change.
function callListener(fn, ...args) {
  try {
    fn(...args)
  } catch (err) {
    process.nextTick(() => {
      throw err
    })
  }
}

module.exports = { SharedMap }
