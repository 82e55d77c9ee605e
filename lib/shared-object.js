'use strict'

// SharedObject: the public face of a value segment. The native binding does the shared
// memory work; this file adds what belongs to JS: argument checks, promises with timeouts
// and AbortSignal, watchers that keep the process alive, the in-process side of lock(),
// and a cache that makes an unchanged read() cost no native call at all.

const path = require('node:path')
const { AsyncLocalStorage } = require('node:async_hooks')
const native = require('./native.js')
const { coded, fromNative, atPath, invalidArgType, outOfRange, timeoutError, closedError, abortError } = require('./errors.js')
const { INTERNAL, MAX_TIMER_MS, fast, call, longTimeout, clearLongTimeout, isUint8Array, checkAttached, checkFd, checkPath, checkBytes, checkTimeout, checkSignal, checkOptions, checkFunction } = require('./common.js')
const { TAG, resolveCodec } = require('./codec.js')

// The largest value size the on-file format allows (MAX_CAPACITY in src/segment/layout.rs).
const MAX_BYTES = 2 ** 39
// Index of `current` (commit << 2 | slot) in a BigUint64Array over the header (byte offset
// 64, see src/segment/layout.rs). Any change of it is a new commit; version = current >> 2.
const CURRENT_INDEX = 8
// Where valueRead leaves the type tag of the value it returns (src/napi/mod.rs, set_meta):
// bound once per thread.
const META = new Uint32Array(2)
fast.valueBindMeta(META)
// The per-call native functions, taken out of `fast` once (its many properties make every
// lookup on it a slow one), and the tags the hot paths pass.
const { valueRead, valueWriteString, valueWriteBytes } = fast
const TAG_STRING = TAG.STRING
const TAG_BYTES = TAG.BYTES
// The codec when none is given: strings and bytes as format 1 kept them, numbers, booleans,
// null, plain objects and arrays as SharedMap's default codec stores them.
const DEFAULT_CODEC = resolveCodec('default')
// Tags whose read() result is made afresh from the stored bytes on every read (an object
// handed out from a cache could be changed by its receiver), as a bit mask (tags are < 32).
const DECODED = (1 << TAG.JSON) | (1 << TAG.V8) | (1 << TAG.CUSTOM)
const decoded = (tag) => ((DECODED >>> tag) & 1) === 1
// Payloads of the values whose bytes JS makes: a number's 8 bytes, nothing for the rest.
const NUMBER_BYTES = new Uint8Array(8)
const NUMBER_VIEW = new DataView(NUMBER_BYTES.buffer)
const NO_BYTES = new Uint8Array(0)
// readBuffer() reads values at least this long straight into a Buffer of their own, not
// through the scratch area (a copy saved; below it, a pooled Buffer and a copy are cheaper).
const DIRECT_MIN = 64 * 1024
// How long an idle notifier thread lingers before it is stopped (a ping-pong would
// otherwise start a thread per wait).
const NOTIFIER_LINGER_MS = 250
// readBuffer()'s copy space is kept between calls up to this size (as the native scratch
// space, src/napi/scratch.rs): one large value must not stay resident for the handle's life.
const SCRATCH_KEPT = 1 << 20

// A handle dropped without close() is closed when it is garbage-collected.
const finalizer = new FinalizationRegistry((id) => native.valueClose(id))
// Which lock() section (if any) the current async context runs inside.
const lockContext = new AsyncLocalStorage()

// `at`: the path being opened, named in the messages.
function openOptions(options, at) {
  const o = checkOptions('options', options, ['codec', 'size', 'maxSize', 'create', 'readOnly', 'mode'], at)
  const out = {
    codec: resolveCodec(o.codec, 'options.codec', at),
    size: checkBytes('options.size', o.size, at),
    maxSize: checkBytes('options.maxSize', o.maxSize, at),
    create: o.create,
    readOnly: o.readOnly,
    mode: o.mode,
  }
  for (const key of ['create', 'readOnly']) {
    if (out[key] !== undefined && typeof out[key] !== 'boolean') throw invalidArgType(`options.${key}`, 'a boolean', out[key], at)
  }
  if (out.mode !== undefined && (typeof out.mode !== 'number' || !Number.isInteger(out.mode) || out.mode < 0 || out.mode > 0o777)) {
    throw outOfRange('options.mode', 'must be an integer from 0 to 0o777', out.mode, at)
  }
  for (const key of ['size', 'maxSize']) {
    if (out[key] > MAX_BYTES) throw outOfRange(`options.${key}`, `must be at most ${MAX_BYTES} bytes (2^39, the format's limit)`, out[key], at)
  }
  if (out.size !== undefined && out.maxSize !== undefined && out.size > out.maxSize) {
    throw outOfRange('options.size', `must not exceed options.maxSize (${out.maxSize})`, out.size, at)
  }
  return out
}

// The options the native open takes (the codec stays in JS: every value carries its tag).
function nativeOptions({ codec, ...rest }) {
  return rest
}

class SharedObject {
  #id
  #path
  #codec
  #header = null // BigUint64Array over the header (current at CURRENT_INDEX); null where external buffers are refused
  #cacheCurrent = -1n // the current word the cached value belongs to
  #cacheValue = '' // read()'s result, or for DECODED tags the stored form to decode
  #cacheTag = TAG.STRING
  #buffer = null
  #bufferCurrent = -1n
  #scratch = Buffer.allocUnsafeSlow(1024)
  #lastLength = 0 // of the last value readBuffer() returned
  #closed = false
  #waiters = new Set()
  #watchers = new Set()
  #notifierOn = false
  #lingerTimer = null
  #keepAlive = null
  #lockTail = Promise.resolve()
  #lockHeld = null // the token of the lock() section holding this handle's lock, if any
  #lockWaits = new Set() // pending steps of lock() calls, for close() to reject

  constructor(key, id, codec) {
    if (key !== INTERNAL) {
      throw coded(TypeError, 'ERR_ILLEGAL_CONSTRUCTOR', 'Use SharedObject.open(path), SharedObject.anonymous() or SharedObject.fromFd(fd)')
    }
    this.#id = id
    this.#codec = codec
    try {
      this.#path = native.valueInfo(id).path
      let header = null
      try {
        header = native.valueHeader(id)
      } catch (err) {
        // A runtime that forbids external buffers (Electron): no view of the header, so
        // the version comes from a native call and read() has no cache.
        if (err.code !== 'ERR_EXTERNAL_BUFFER_UNSUPPORTED') throw err
      }
      if (header !== null) this.#header = new BigUint64Array(header.buffer, header.byteOffset, header.length / 8)
    } catch (err) {
      native.valueClose(id)
      throw fromNative(err)
    }
    finalizer.register(this, id, this)
  }

  /**
   * Opens the segment at `path`, creating it if needed.
   */
  static open(file, options) {
    checkPath(file)
    const resolved = path.resolve(file)
    const opts = openOptions(options, resolved)
    const id = call(() => native.valueOpen(resolved, nativeOptions(opts)))
    return new SharedObject(INTERNAL, id, opts.codec)
  }

  /** A new unnamed segment (memfd) to share with child processes through `fd`. */
  static anonymous(sizeOrOptions) {
    const options = typeof sizeOrOptions === 'number' ? { size: sizeOrOptions } : sizeOrOptions
    const opts = openOptions(options, 'memfd')
    const id = call(() => native.valueAnonymous(nativeOptions(opts)))
    return new SharedObject(INTERNAL, id, opts.codec)
  }

  /** Opens the segment behind an inherited file descriptor (opened afresh; the caller keeps its own). */
  static fromFd(fd, options) {
    checkFd(fd)
    const opts = openOptions(options, `fd:${fd}`)
    const id = call(() => native.valueFromFd(fd, nativeOptions(opts)))
    return new SharedObject(INTERNAL, id, opts.codec)
  }

  /**
   * Converts a segment of format 1 (share-object before format 2) to format 2 in place,
   * keeping its value, version, mode and group. Every process that has it open must close
   * it first (`ERR_IN_USE`). A torn format-1 value is refused (`ERR_WRITER_DIED`) unless
   * `{ discardTorn: true }`. Returns `{ version, converted, discardedTorn }`; `converted` is
   * false if the file was format 2 already.
   */
  static upgrade(file, options) {
    checkPath(file)
    const resolved = path.resolve(file)
    const o = checkOptions('options', options, ['discardTorn'], resolved)
    if (o.discardTorn !== undefined && typeof o.discardTorn !== 'boolean') throw invalidArgType('options.discardTorn', 'a boolean', o.discardTorn, resolved)
    return call(() => native.valueUpgrade(resolved, o.discardTorn))
  }

  /**
   * Removes a share-object segment file of any kind (value, channel, …). Anything else at
   * the path is refused with ERR_NOT_A_SEGMENT and left as it is: a file that is not a
   * segment, a symlink (never followed), a directory. Open handles keep working on the
   * removed file.
   */
  static unlink(file) {
    checkPath(file)
    call(() => native.unlink(path.resolve(file)))
  }

  #check() {
    if (this.#closed) throw closedError(this.#path)
  }

  /** The segment's path (`memfd:…` for anonymous segments). */
  get path() {
    return this.#path
  }

  /** Counts commits (completed writes), the same in every process. */
  get version() {
    this.#check()
    return Number(this.#loadCurrent() >> 2n)
  }

  /** Bytes the value can take before the segment grows, now (a growth made by another process included). */
  get capacity() {
    this.#check()
    return call(() => native.valueCapacity(this.#id))
  }

  /** The largest value this handle grows the segment for. */
  get maxSize() {
    this.#check()
    return native.valueInfo(this.#id).maxSize
  }

  /** Whether the handle was opened with `readOnly: true`. */
  get readOnly() {
    this.#check()
    return native.valueInfo(this.#id).readOnly
  }

  /**
   * A descriptor of the segment to pass to a child through `spawn`'s `stdio` (the child
   * opens it with `fromFd`). Opened on first use and closed with the handle; it holds none
   * of this handle's locks, so a child that keeps it open does not keep this handle alive.
   */
  get fd() {
    this.#check()
    return call(() => native.valueFd(this.#id))
  }

  /** Whether `close()` was called. */
  get closed() {
    return this.#closed
  }

  // The header's `current` word: a new value for every commit, and the version shifted
  // left by 2. Without a header view, made from the version the native side reports.
  #loadCurrent() {
    if (this.#header !== null) return Atomics.load(this.#header, CURRENT_INDEX)
    return BigInt(call(() => native.valueVersion(this.#id))) << 2n
  }

  /**
   * The current value: a string for a string or bytes (UTF-8), a number, boolean or null as
   * written, a plain object or array decoded afresh from its JSON (or as the codec decodes it).
   */
  read() {
    if (this.#closed) throw closedError(this.#path)
    const header = this.#header
    if (header === null) {
      const raw = call(() => valueRead(this.#id))
      const tag = META[0]
      return decoded(tag) ? this.#decode(raw, tag) : raw
    }
    const current = Atomics.load(header, CURRENT_INDEX)
    if (current === this.#cacheCurrent) {
      return decoded(this.#cacheTag) ? this.#decode(this.#cacheValue, this.#cacheTag) : this.#cacheValue
    }
    let raw
    try {
      raw = valueRead(this.#id)
    } catch (err) {
      throw fromNative(err)
    }
    const tag = META[0]
    // The value read is of commit `current` or a later one, so a later read that still
    // finds `current` may return it (see "How it works" in the README).
    // A large value is not kept: reading it again costs little next to its size, and the
    // cache must not hold one value's size in memory for the handle's life.
    if (!(raw?.length > SCRATCH_KEPT)) {
      this.#cacheCurrent = current
      this.#cacheValue = raw
      this.#cacheTag = tag
    } else {
      this.#cacheCurrent = -1n
      this.#cacheValue = undefined
    }
    return decoded(tag) ? this.#decode(raw, tag) : raw
  }

  // What read() returns for the native result `raw` of a value of type `tag`.
  // (Callers test decoded(tag) first: the string path makes no call.)
  #decode(raw, tag) {
    try {
      // A decoder may return views of its input (v8.deserialize's typed arrays, msgpackr's
      // Buffers): it gets a copy, never the cached bytes, so that changing a result changes
      // no later read().
      return this.#codec.decode(tag, typeof raw === 'string' ? raw : Buffer.from(raw))
    } catch (err) {
      throw atPath(err, this.#path)
    }
  }

  /** A copy of the current value's bytes. */
  readBuffer() {
    this.#check()
    // A large value is read straight into a Buffer of its own (one copy), sized by the last
    // one: the size seldom changes between reads.
    if (this.#lastLength >= DIRECT_MIN) return this.#readBufferDirect()
    for (;;) {
      const scratch = this.#scratch
      const length = call(() => native.valueReadInto(this.#id, scratch))
      if (length <= scratch.length) {
        this.#lastLength = length
        const copy = Buffer.allocUnsafe(length)
        scratch.copy(copy, 0, 0, length)
        return copy
      }
      if (length >= DIRECT_MIN) {
        this.#lastLength = length
        return this.#readBufferDirect()
      }
      // The value outgrew the scratch space (it may have grown since): make room, retry.
      // Above the kept size exactly the value's size, as that space becomes the result.
      this.#scratch = Buffer.allocUnsafeSlow(length > SCRATCH_KEPT ? length : Math.max(length, scratch.length * 2))
    }
  }

  // readBuffer() of a large value: into a Buffer of the last value's size; a value of
  // another size is read again into one of its own (a smaller one is copied out when it
  // would waste more than half the Buffer).
  #readBufferDirect() {
    for (;;) {
      const out = Buffer.allocUnsafeSlow(this.#lastLength)
      const length = call(() => native.valueReadInto(this.#id, out))
      this.#lastLength = length
      if (length === out.length) return out
      if (length < out.length) return length * 2 >= out.length ? out.subarray(0, length) : Buffer.from(out.subarray(0, length))
    }
  }

  /**
   * Replaces the value (committed whole, or not at all); returns the number of bytes stored.
   * A value the codec cannot encode throws (`ERR_INVALID_ARG_TYPE`, `ERR_CODEC_ENCODE`) and
   * the old value stays.
   */
  write(value) {
    this.#check()
    if (this.#codec === DEFAULT_CODEC) {
      try {
        if (typeof value === 'string') return valueWriteString(this.#id, value, TAG_STRING)
        if (isUint8Array(value) && Buffer.isBuffer(value)) return valueWriteBytes(this.#id, checkAttached('value', value, this.#path), TAG_BYTES)
      } catch (err) {
        throw fromNative(err)
      }
    }
    const codec = this.#codec
    let payload
    try {
      payload = codec.encode(value)
      if (isUint8Array(payload)) checkAttached('value', payload, this.#path)
    } catch (err) {
      throw atPath(err, this.#path)
    }
    const tag = codec.tag
    try {
      switch (tag) {
        case TAG.STRING:
        case TAG.JSON:
          return valueWriteString(this.#id, payload, tag)
        case TAG.NUMBER:
          NUMBER_VIEW.setFloat64(0, payload, true)
          return valueWriteBytes(this.#id, NUMBER_BYTES, tag)
        case TAG.TRUE:
        case TAG.FALSE:
        case TAG.NULL:
          return valueWriteBytes(this.#id, NO_BYTES, tag)
        default:
          return valueWriteBytes(this.#id, payload, tag)
      }
    } catch (err) {
      throw fromNative(err)
    }
  }

  // The value together with the version it belongs to.
  #readVersioned() {
    this.#check()
    for (let i = 0; i < 16; i++) {
      const current = this.#loadCurrent()
      const value = this.read()
      if (this.#loadCurrent() === current) return { value, version: Number(current >> 2n) }
    }
    const value = this.read()
    return { value, version: this.version }
  }

  /**
   * Blocks the thread until the version differs from `since` (default: the current one);
   * returns the new version. Throws ERR_TIMEOUT after `timeoutMs`.
   */
  waitForChangeSync(since, timeoutMs) {
    this.#check()
    const from = since === undefined ? this.version : checkBytes('since', since, this.#path)
    const timeout = checkTimeout('timeoutMs', timeoutMs, this.#path)
    let v
    try {
      v = fast.valueWaitSync(this.#id, from, timeout)
    } catch (err) {
      throw fromNative(err)
    }
    if (v === null) throw timeoutError(this.#path, timeout, 'a change')
    return v
  }

  /** Resolves with the new version once the version differs from `since`. */
  waitForChange(since, options) {
    try {
      this.#check()
      const from = since === undefined ? this.version : checkBytes('since', since, this.#path)
      const o = checkOptions('options', options, ['timeout', 'signal', 'ref'], this.#path)
      const timeout = checkTimeout('options.timeout', o.timeout, this.#path)
      const signal = checkSignal(o.signal, this.#path)
      const ref = o.ref === undefined ? true : Boolean(o.ref)
      const now = this.version
      if (now !== from) return Promise.resolve(now)
      if (signal?.aborted) return Promise.reject(abortError(signal))
      return new Promise((resolve, reject) => {
        const waiter = { since: from, resolve, reject, ref, timer: null, signal, onAbort: null }
        this.#waiters.add(waiter)
        try {
          this.#listenersChanged()
        } catch (err) {
          this.#waiters.delete(waiter) // no notifier thread: nothing waits
          throw err
        }
        if (timeout !== undefined) {
          waiter.timer = longTimeout(
            () => {
              this.#dropWaiter(waiter)
              reject(timeoutError(this.#path, timeout, 'a change'))
            },
            timeout,
            ref,
          )
        }
        if (signal) {
          waiter.onAbort = () => {
            this.#dropWaiter(waiter)
            reject(abortError(signal))
          }
          signal.addEventListener('abort', waiter.onAbort, { once: true })
        }
      })
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Calls `listener(value, version)` after every change (changes that come faster than
   * the listener runs are coalesced: it always gets the latest value). Returns a function
   * that stops watching. An active watcher keeps the process alive unless `{ ref: false }`.
   * A change whose value cannot be read (ERR_CORRUPT, ERR_CODEC_DECODE) is skipped and
   * passed to `options.onError` if given, once per change (a state that was already
   * unreadable when watching began is not a change).
   */
  watch(listener, options) {
    this.#check()
    checkFunction('listener', listener, this.#path)
    const o = checkOptions('options', options, ['ref', 'onError'], this.#path)
    if (o.onError !== undefined) checkFunction('options.onError', o.onError, this.#path)
    const current = this.#loadCurrent()
    const watcher = {
      listener,
      onError: o.onError,
      ref: o.ref === undefined ? true : Boolean(o.ref),
      last: Number(current >> 2n),
      // The current word of the last state onError heard about; starting at this one, a
      // state that was already unreadable when watching began is not a change.
      failedAt: current,
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
   * An async iterator of `{ value, version }`, one per change after this call (coalesced
   * like watch). Ends when the handle is closed; a change whose value cannot be read ends
   * it with that error; `signal` ends it with an AbortError.
   */
  changes(options) {
    this.#check()
    const o = checkOptions('options', options, ['signal', 'ref'], this.#path)
    const signal = checkSignal(o.signal, this.#path)
    // Taken now, not at the first next(): a write in between is a change.
    return this.#changes(this.version, signal, o.ref)
  }

  async *#changes(since, signal, ref) {
    for (;;) {
      let current
      try {
        await this.waitForChange(since, { signal, ref })
        current = this.#readVersioned()
      } catch (err) {
        if (err.code === 'ERR_CLOSED') return
        throw err
      }
      since = current.version
      yield current
    }
  }

  #dropWaiter(waiter) {
    if (!this.#waiters.delete(waiter)) return false
    clearLongTimeout(waiter.timer)
    if (waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort)
    this.#listenersChanged()
    return true
  }

  // Starts or stops the notifier thread and the keep-alive handle to match the listeners.
  // Throws (changing nothing) if the thread cannot be started.
  #listenersChanged() {
    if (this.#closed) return
    const any = this.#waiters.size > 0 || this.#watchers.size > 0
    if (any && !this.#notifierOn) {
      call(() => native.valueStartNotifier(this.#id, () => this.#onNotify()))
      this.#notifierOn = true
    }
    let ref = false
    for (const w of this.#waiters) ref ||= w.ref
    for (const w of this.#watchers) ref ||= w.ref
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
        if (!this.#closed && this.#waiters.size === 0 && this.#watchers.size === 0) {
          native.valueStopNotifier(this.#id)
          this.#notifierOn = false
        }
      }, NOTIFIER_LINGER_MS)
      this.#lingerTimer.unref()
    }
  }

  // Runs on the JS thread after one or more writes (coalesced).
  #onNotify() {
    if (this.#closed) return
    const version = this.version
    for (const waiter of [...this.#waiters]) {
      if (waiter.since !== version && this.#dropWaiter(waiter)) waiter.resolve(version)
    }
    if (this.#watchers.size === 0) return
    // The current word before the read names the state an error belongs to: a wake-up
    // that finds the same unreadable state (the futex word bumped again, a spurious wake)
    // reports nothing new.
    const at = this.#loadCurrent()
    let current
    try {
      current = this.#readVersioned()
    } catch (err) {
      // The value cannot be read now (a damaged header, a value this codec cannot decode):
      // this change is not delivered; watchers that asked hear why, once per state. Never
      // thrown from here, where it would be an uncaught exception.
      for (const watcher of [...this.#watchers]) {
        if (!watcher.onError || !this.#watchers.has(watcher) || watcher.failedAt === at) continue
        watcher.failedAt = at
        callListener(watcher.onError, err)
      }
      return
    }
    for (const watcher of [...this.#watchers]) {
      if (!this.#watchers.has(watcher) || current.version === watcher.last) continue
      watcher.last = current.version
      callListener(watcher.listener, current.value, current.version)
    }
  }

  /**
   * Runs `fn` holding the segment's cross-process lock; resolves with what it returns
   * (awaited). The lock is released when `fn` returns or throws, and by the kernel if this
   * process dies. Nested lock()/lockSync() calls inside `fn` run at once (re-entrant).
   */
  async lock(fn, options) {
    this.#check()
    checkFunction('fn', fn, this.#path)
    const timeout = checkTimeout('options.timeout', checkOptions('options', options, ['timeout'], this.#path).timeout, this.#path)
    const held = this.#lockHeld
    if (held && lockContext.getStore() === held) return fn()
    const started = performance.now()
    // One section at a time per handle; other handles and processes queue in the kernel.
    const previous = this.#lockTail
    let done
    this.#lockTail = new Promise((resolve) => {
      done = resolve
    })
    try {
      await this.#lockTurn(previous, timeout)
    } catch (err) {
      previous.then(done) // the section after this one still waits for the one before
      throw err
    }
    try {
      this.#check()
      // The timeout counts from the call: time spent queued behind this handle's own
      // sections is part of it.
      const left = timeout === undefined ? undefined : Math.max(0, timeout - (performance.now() - started))
      await this.#lockWait((resolve, reject) => {
        call(() =>
          native.valueLockAsync(this.#id, left, (err) => {
            if (err) {
              // The time this handle's earlier sections took counts: name the whole timeout.
              reject(err.code === 'ERR_TIMEOUT' ? timeoutError(this.#path, timeout, 'the lock') : fromNative(err))
              return false
            }
            // Closed meanwhile (the wait was rejected with ERR_CLOSED): false hands the
            // lock straight back.
            if (this.#closed) return false
            resolve()
            return true
          }),
        )
      })
      this.#check() // close() between the lock's arrival and now released it
      const token = {}
      this.#lockHeld = token
      try {
        return await lockContext.run(token, fn)
      } finally {
        this.#lockHeld = null
        if (!this.#closed) native.valueUnlock(this.#id)
      }
    } finally {
      done()
    }
  }

  // Waits for this handle's previous lock() section to end, within `timeout` ms.
  #lockTurn(previous, timeout) {
    return this.#lockWait((resolve, reject) => {
      previous.then(resolve)
      if (timeout === undefined) return undefined
      const timer = longTimeout(() => reject(timeoutError(this.#path, timeout, 'the lock')), timeout)
      return () => clearLongTimeout(timer)
    })
  }

  // A promise for one step of a lock() wait, which close() rejects with ERR_CLOSED. The
  // executor may return a cleanup, run once the step settles, however it does.
  #lockWait(executor) {
    return new Promise((resolve, reject) => {
      let cleanup
      const wait = {
        reject: (err) => settle(reject, err),
      }
      const settle = (f, v) => {
        if (!this.#lockWaits.delete(wait)) return
        if (cleanup) cleanup()
        f(v)
      }
      this.#lockWaits.add(wait)
      cleanup = executor(
        (v) => settle(resolve, v),
        (err) => settle(reject, err),
      )
      if (cleanup && !this.#lockWaits.has(wait)) cleanup() // it settled at once
    })
  }

  /** Like `lock`, but blocks the thread while waiting and `fn` must be synchronous. */
  lockSync(fn, options) {
    this.#check()
    checkFunction('fn', fn, this.#path)
    const timeout = checkTimeout('options.timeout', checkOptions('options', options, ['timeout'], this.#path).timeout, this.#path)
    const held = this.#lockHeld
    if (held) {
      if (lockContext.getStore() === held) return fn()
      throw coded(Error, 'ERR_LOCK_HELD', `${this.#path}: lockSync() called while an unfinished lock() section of this handle holds the lock; waiting would deadlock this thread (use await lock())`)
    }
    try {
      native.valueLockSync(this.#id, timeout)
    } catch (err) {
      throw err.code === 'ERR_TIMEOUT' ? timeoutError(this.#path, timeout, 'the lock') : fromNative(err)
    }
    const token = {}
    this.#lockHeld = token
    try {
      return lockContext.run(token, fn)
    } finally {
      this.#lockHeld = null
      if (!this.#closed) native.valueUnlock(this.#id)
    }
  }

  /** Whether a live process holds the lock now. */
  get locked() {
    this.#check()
    return native.valueLocked(this.#id)
  }

  /**
   * A zero-copy Buffer over the committed value's slot (its whole region). Every process
   * that reads `buffer` between two writes gets the same bytes. A `write()` commits into
   * another slot: read `buffer` again after one. It stays valid after `close()`.
   */
  get buffer() {
    this.#check()
    const current = this.#loadCurrent()
    if (this.#buffer === null || this.#bufferCurrent !== current) {
      this.#buffer = call(() => native.valueBuffer(this.#id))
      this.#bufferCurrent = current
    }
    return this.#buffer
  }

  /** Closes the handle. Pending waits reject with ERR_CLOSED. Closing twice is harmless. */
  close() {
    if (this.#closed) return
    this.#closed = true
    finalizer.unregister(this)
    const err = closedError(this.#path)
    for (const waiter of [...this.#waiters]) {
      this.#waiters.delete(waiter)
      clearLongTimeout(waiter.timer)
      if (waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort)
      waiter.reject(err)
    }
    for (const wait of [...this.#lockWaits]) wait.reject(err)
    this.#watchers.clear()
    if (this.#keepAlive) clearInterval(this.#keepAlive)
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer)
    this.#keepAlive = this.#lingerTimer = null
    this.#buffer = null
    this.#header = null
    native.valueClose(this.#id)
  }

  [Symbol.dispose]() {
    this.close()
  }

  get [Symbol.toStringTag]() {
    return 'SharedObject'
  }
}

// Calls a watch() listener. What it throws is an uncaught exception, as from an event
// listener, but only after the other watchers have had this change.
function callListener(fn, ...args) {
  try {
    fn(...args)
  } catch (err) {
    process.nextTick(() => {
      throw err
    })
  }
}

// The default segment behind the top-level read()/write(): `share-data` in the working
// folder, or $SHARE_OBJECT_PATH, opened on first use.
let defaultObject = null

function defaultSegment() {
  if (defaultObject === null || defaultObject.closed) {
    defaultObject = SharedObject.open(process.env.SHARE_OBJECT_PATH || 'share-data')
  }
  return defaultObject
}

function read() {
  return defaultSegment().read()
}

function write(value) {
  return defaultSegment().write(value)
}

module.exports = { SharedObject, read, write }
