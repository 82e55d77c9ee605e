'use strict'

// SharedObject: the public face of a value segment. The native binding does the shared
// memory work; this file adds what belongs to JS: argument checks, promises with timeouts
// and AbortSignal, watchers that keep the process alive, the in-process side of lock(),
// and a cache that makes an unchanged read() cost no native call at all.

const path = require('node:path')
const { AsyncLocalStorage } = require('node:async_hooks')
const native = require('./native.js')
const { coded, fromNative, invalidArgType, outOfRange, timeoutError, closedError, abortError } = require('./errors.js')
const { INTERNAL, MAX_TIMER_MS, fast, call, longTimeout, clearLongTimeout, isUint8Array, checkAttached, checkFd, checkPath, checkBytes, checkTimeout, checkSignal, checkOptions, checkFunction } = require('./common.js')

// The largest value size the on-file format allows (MAX_CAPACITY in src/segment/layout.rs).
const MAX_BYTES = 2 ** 39
// Index of `seq` in a BigUint64Array over the header (byte offset 64, see src/segment/layout.rs).
const SEQ_INDEX = 8
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
  const o = checkOptions('options', options, ['size', 'maxSize', 'create', 'readOnly', 'mode'], at)
  const out = {
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

class SharedObject {
  #id
  #path
  #seq = null // BigUint64Array over the header (seq at SEQ_INDEX); null where external buffers are refused
  #cacheSeq = -1n
  #cacheValue = ''
  #buffer = null
  #bufferCapacity = -1
  #scratch = Buffer.allocUnsafeSlow(1024)
  #closed = false
  #waiters = new Set()
  #watchers = new Set()
  #notifierOn = false
  #lingerTimer = null
  #keepAlive = null
  #lockTail = Promise.resolve()
  #lockHeld = null // the token of the lock() section holding this handle's lock, if any
  #lockWaits = new Set() // pending steps of lock() calls, for close() to reject

  constructor(key, id) {
    if (key !== INTERNAL) {
      throw coded(TypeError, 'ERR_ILLEGAL_CONSTRUCTOR', 'Use SharedObject.open(path), SharedObject.anonymous() or SharedObject.fromFd(fd)')
    }
    this.#id = id
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
      if (header !== null) this.#seq = new BigUint64Array(header.buffer, header.byteOffset, header.length / 8)
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
    const id = call(() => native.valueOpen(resolved, opts))
    return new SharedObject(INTERNAL, id)
  }

  /** A new unnamed segment (memfd) to share with child processes through `fd`. */
  static anonymous(sizeOrOptions) {
    const options = typeof sizeOrOptions === 'number' ? { size: sizeOrOptions } : sizeOrOptions
    const opts = openOptions(options, 'memfd')
    const id = call(() => native.valueAnonymous(opts))
    return new SharedObject(INTERNAL, id)
  }

  /** Opens the segment behind an inherited file descriptor (opened afresh; the caller keeps its own). */
  static fromFd(fd, options) {
    checkFd(fd)
    const opts = openOptions(options, `fd:${fd}`)
    const id = call(() => native.valueFromFd(fd, opts))
    return new SharedObject(INTERNAL, id)
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

  /** Counts writes, the same in every process (a write cut short by a killed writer counts too). */
  get version() {
    this.#check()
    return Number(this.#loadSeq() / 2n)
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

  // The header's sequence word: odd while a write is in progress, twice the version
  // otherwise. Without a header view, twice the version the native side reports.
  #loadSeq() {
    if (this.#seq !== null) return Atomics.load(this.#seq, SEQ_INDEX)
    return BigInt(call(() => native.valueVersion(this.#id))) * 2n
  }

  /** The current value as a string (UTF-8). */
  read() {
    if (this.#closed) throw closedError(this.#path)
    if (this.#seq === null) return call(() => fast.valueRead(this.#id))
    const seq = Atomics.load(this.#seq, SEQ_INDEX)
    if (seq === this.#cacheSeq) return this.#cacheValue
    let value
    try {
      value = fast.valueRead(this.#id)
    } catch (err) {
      throw fromNative(err)
    }
    // `seq` was even and no write has completed since if it is still current, so the
    // value read belongs to it: cache it for the next read (see "How it works" in the README).
    // A large value is not kept: reading it again costs little next to its size, and the
    // cache must not hold one value's size in memory for the handle's life.
    if ((seq & 1n) === 0n && value.length <= SCRATCH_KEPT) {
      this.#cacheSeq = seq
      this.#cacheValue = value
    }
    return value
  }

  /** A copy of the current value's bytes. */
  readBuffer() {
    this.#check()
    for (;;) {
      const scratch = this.#scratch
      const length = call(() => native.valueReadInto(this.#id, scratch))
      if (length <= scratch.length) {
        if (scratch.length > SCRATCH_KEPT) {
          // A large copy space is not kept: it becomes the result (no second copy).
          this.#scratch = Buffer.allocUnsafeSlow(1024)
          return length === scratch.length ? scratch : scratch.subarray(0, length)
        }
        const copy = Buffer.allocUnsafe(length)
        scratch.copy(copy, 0, 0, length)
        return copy
      }
      // The value outgrew the scratch space (it may have grown since): make room, retry.
      // Above the kept size exactly the value's size, as that space becomes the result.
      this.#scratch = Buffer.allocUnsafeSlow(length > SCRATCH_KEPT ? length : Math.max(length, scratch.length * 2))
    }
  }

  /** Replaces the value; returns the number of bytes written. */
  write(value) {
    this.#check()
    try {
      if (typeof value === 'string') return fast.valueWriteString(this.#id, value)
      if (isUint8Array(value)) return fast.valueWriteBytes(this.#id, checkAttached('value', value, this.#path))
    } catch (err) {
      throw fromNative(err)
    }
    throw invalidArgType('value', 'a string, Buffer or Uint8Array', value, this.#path)
  }

  // The value together with the version it belongs to.
  #readVersioned() {
    this.#check()
    for (let i = 0; i < 16; i++) {
      const seq = this.#loadSeq()
      const value = this.read()
      if (this.#loadSeq() === seq && (seq & 1n) === 0n) return { value, version: Number(seq / 2n) }
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
   * A change whose value cannot be read (ERR_WRITER_DIED, ERR_CORRUPT) is skipped and
   * passed to `options.onError` if given, once per change (a state that was already
   * unreadable when watching began is not a change).
   */
  watch(listener, options) {
    this.#check()
    checkFunction('listener', listener, this.#path)
    const o = checkOptions('options', options, ['ref', 'onError'], this.#path)
    if (o.onError !== undefined) checkFunction('options.onError', o.onError, this.#path)
    const seq = this.#loadSeq()
    const watcher = {
      listener,
      onError: o.onError,
      ref: o.ref === undefined ? true : Boolean(o.ref),
      last: Number(seq / 2n),
      // The sequence word of the last state onError heard about; starting at the current
      // one, a state that was already unreadable when watching began is not a change.
      failedSeq: seq,
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
    // The sequence word before the read names the state an error belongs to: a wake-up
    // that finds the same unreadable state (the futex word bumped again, a spurious wake)
    // reports nothing new.
    const seq = this.#loadSeq()
    let current
    try {
      current = this.#readVersioned()
    } catch (err) {
      // The value cannot be read now (a writer died mid-write, a damaged header): this
      // change is not delivered; watchers that asked hear why, once per state. Never
      // thrown from here, where it would be an uncaught exception.
      for (const watcher of [...this.#watchers]) {
        if (!watcher.onError || !this.#watchers.has(watcher) || watcher.failedSeq === seq) continue
        watcher.failedSeq = seq
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
   * A zero-copy Buffer over the value area (`capacity` bytes, as they are now: a growth
   * made by another process is adopted). It stays valid after `close()`; a Buffer taken
   * before the segment grew keeps covering the old area: read `buffer` again when
   * `capacity` changed.
   */
  get buffer() {
    this.#check()
    const capacity = call(() => native.valueCapacity(this.#id))
    if (this.#buffer === null || this.#bufferCapacity !== capacity) {
      this.#buffer = call(() => native.valueBuffer(this.#id))
      this.#bufferCapacity = capacity
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
    this.#seq = null
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
  if (typeof value !== 'string') throw invalidArgType('value', 'a string', value, path.resolve(process.env.SHARE_OBJECT_PATH || 'share-data'))
  return defaultSegment().write(value)
}

module.exports = { SharedObject, read, write }
