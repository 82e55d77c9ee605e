'use strict'

// Channel: a bounded message queue in a shared segment (many producers, one consumer).
// The native side moves bytes through the ring; this file adds batching, promises with
// timeouts and AbortSignal, async iteration and the consumer hand-over.

const path = require('node:path')
const native = require('./native.js')
const { coded, fromNative, atPath, invalidArgType, invalidArgValue, outOfRange, closedError, abortError, timeoutError } = require('./errors.js')
const { fast, isUint8Array, checkAttached, checkFd, checkPath, checkOptions, checkTimeout, checkSignal, checkBytes, checkCount, checkFunction, call, INTERNAL, MAX_TIMER_MS, longTimeout, clearLongTimeout } = require('./common.js')
const { resolveMessageCodec } = require('./codec.js')

const finalizer = new FinalizationRegistry((id) => native.channelClose(id))
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

// A text message's string; bytes that are not UTF-8 are a coded decode error.
function utf8(bytes) {
  try {
    return STRICT_UTF8.decode(bytes)
  } catch (err) {
    throw coded(Error, 'ERR_CODEC_DECODE', `The JSON codec cannot decode this message: it is not UTF-8 (${err.message})`, { cause: err })
  }
}
const NOTIFIER_LINGER_MS = 250
// Messages a receive call takes at most (the lengths array size).
const MAX_BATCH = 4096
// Size of the sendBatch packing area kept between calls (a larger one is made as needed).
const PACK_KEPT = 64 * 1024
const DATA = false
const SPACE = true

// The native options, and the codec (kept in JS: the file does not record it). `at`: the
// path being opened, named in the messages.
function channelOptions(options, at) {
  const o = checkOptions('options', options, ['capacity', 'create', 'mode', 'codec'], at)
  const codec = resolveMessageCodec(o.codec, 'options.codec', at)
  const out = { capacity: checkBytes('options.capacity', o.capacity, at), create: o.create, mode: o.mode }
  if (out.capacity !== undefined && (out.capacity < 1024 || out.capacity > 2 ** 30 || (out.capacity & (out.capacity - 1)) !== 0)) {
    throw outOfRange('options.capacity', 'must be a power of two from 1024 to 2^30', out.capacity, at)
  }
  if (out.create !== undefined && typeof out.create !== 'boolean') throw invalidArgType('options.create', 'a boolean', out.create, at)
  if (out.mode !== undefined && (typeof out.mode !== 'number' || !Number.isInteger(out.mode) || out.mode < 0 || out.mode > 0o777)) {
    throw outOfRange('options.mode', 'must be an integer from 0 to 0o777', out.mode, at)
  }
  return { native: out, codec }
}

function checkEncoding(encoding, at) {
  if (encoding === undefined || encoding === null || encoding === 'buffer') return undefined
  if (typeof encoding !== 'string') throw invalidArgType('options.encoding', 'a string', encoding, at)
  if (!Buffer.isEncoding(encoding)) throw invalidArgValue('options.encoding', "must be a Buffer encoding (such as 'utf8') or 'buffer'", encoding, at)
  return encoding
}

class Channel {
  #id
  #path
  #codec // null: messages are the strings and bytes sent
  #capacity
  #maxMessage
  #closed = false
  #rx // receive area: at least the largest message
  #lens = new Uint32Array(MAX_BATCH)
  #meta = new Uint32Array(1 + 2 * MAX_BATCH) // consume(): count, then (offset, length) pairs
  #lent = null // the ArrayBuffer over the messages a running consume() lends, or null
  #lentDelivered = 0 // how many of them its callback has been given
  #pack = Buffer.allocUnsafeSlow(PACK_KEPT) // sendBatch packing area
  #recvs = [] // pending recv() calls, oldest first
  #sends = [] // pending sendAsync() calls, oldest first
  #notifiers = [false, false]
  #spaceNeed = 0 // the message size the space notifier waits for room for
  #lingers = [null, null]
  #keepAlive = null
  #claims = new Set() // pending claimConsumer({ wait: true }) calls, for close() to reject

  constructor(key, id, codec) {
    if (key !== INTERNAL) throw coded(TypeError, 'ERR_ILLEGAL_CONSTRUCTOR', 'Use Channel.open(path), Channel.anonymous() or Channel.fromFd(fd)')
    this.#id = id
    this.#codec = codec
    try {
      const info = native.channelInfo(id)
      this.#path = info.path
      this.#capacity = info.capacity
      this.#maxMessage = info.maxMessage
      this.#rx = Buffer.allocUnsafeSlow(Math.max(64 * 1024, info.maxMessage))
    } catch (err) {
      native.channelClose(id)
      throw fromNative(err)
    }
    finalizer.register(this, id, this)
  }

  /** Opens or creates the channel at `path`. */
  static open(file, options) {
    checkPath(file)
    const resolved = path.resolve(file)
    const opts = channelOptions(options, resolved)
    return new Channel(INTERNAL, call(() => native.channelOpen(resolved, opts.native)), opts.codec)
  }

  /** A new unnamed channel (memfd); pass `fd` to a child, which opens it with `fromFd`. */
  static anonymous(capacityOrOptions) {
    const options = typeof capacityOrOptions === 'number' ? { capacity: capacityOrOptions } : capacityOrOptions
    const opts = channelOptions(options, 'memfd')
    return new Channel(INTERNAL, call(() => native.channelAnonymous(opts.native)), opts.codec)
  }

  /** Opens the channel behind an inherited file descriptor (opened afresh; the caller keeps its own). */
  static fromFd(fd, options) {
    checkFd(fd)
    const opts = channelOptions(options, `fd:${fd}`)
    return new Channel(INTERNAL, call(() => native.channelFromFd(fd, opts.native)), opts.codec)
  }

  #check() {
    if (this.#closed) throw closedError(this.#path)
  }

  // Receiving inside a consume() callback would reuse the space the callback is reading.
  #checkNotLent() {
    if (this.#lent !== null) throw coded(Error, 'ERR_INVALID_STATE', `${this.#path}: cannot receive inside a consume() callback`)
  }

  get path() {
    return this.#path
  }

  /** Ring size in bytes. */
  get capacity() {
    return this.#capacity
  }

  /** The largest message accepted, in bytes (an eighth of the capacity). */
  get maxMessage() {
    return this.#maxMessage
  }

  /** Ring bytes in use: messages sent and not yet received, with record headers and alignment. */
  get queued() {
    this.#check()
    return call(() => native.channelQueued(this.#id))
  }

  /** Whether this handle is the consumer. */
  get isConsumer() {
    this.#check()
    return native.channelInfo(this.#id).isConsumer
  }

  /** Whether some live process is the consumer. */
  get hasConsumer() {
    this.#check()
    return native.channelInfo(this.#id).consumerHeld
  }

  /** A descriptor to pass to a child (see SharedObject's `fd`): opened once, lock-free. */
  get fd() {
    this.#check()
    return call(() => native.channelFd(this.#id))
  }

  get closed() {
    return this.#closed
  }

  /**
   * Sends one message; returns false if the channel is full right now (never blocks), or
   * while earlier sendAsync() calls of this handle still wait for room (their order is kept).
   */
  send(msg) {
    this.#check()
    if (this.#codec !== null) msg = this.#encode(msg)
    if (this.#sends.length > 0) {
      this.#checkMessage(msg)
      return false
    }
    return this.#trySend(msg)
  }

  // What the native send checks, for a message that is not sent now: its type, and its
  // size against maxMessage. Returns its size in bytes.
  #checkMessage(msg) {
    if (typeof msg === 'string') {
      // Every UTF-16 unit takes at least one UTF-8 byte: a string that long is too large
      // without counting.
      if (msg.length > this.#maxMessage) throw this.#tooLarge('message', msg.length, true)
      const bytes = Buffer.byteLength(msg)
      if (bytes > this.#maxMessage) throw this.#tooLarge('message', bytes)
      return bytes
    }
    if (!isUint8Array(msg)) throw invalidArgType('msg', 'a string, Buffer or Uint8Array', msg, this.#path)
    checkAttached('msg', msg, this.#path)
    if (msg.byteLength > this.#maxMessage) throw this.#tooLarge('message', msg.byteLength)
    return msg.byteLength
  }

  #tooLarge(what, bytes, atLeast = false) {
    const size = `${atLeast ? 'at least ' : ''}${bytes} bytes`
    return coded(RangeError, 'ERR_MESSAGE_TOO_LARGE', `${this.#path}: ${what} of ${size} exceeds the channel's limit of ${this.#maxMessage} bytes`)
  }

  #trySend(msg) {
    try {
      if (typeof msg === 'string') return fast.channelSendString(this.#id, msg)
      if (isUint8Array(msg)) return fast.channelSend(this.#id, checkAttached('msg', msg, this.#path))
    } catch (err) {
      throw fromNative(err)
    }
    throw invalidArgType('msg', 'a string, Buffer or Uint8Array', msg, this.#path)
  }

  /**
   * Sends messages in order until one does not fit; returns how many were sent (the rest
   * were not). One native call per 64 KiB or so of messages. A message that can never be
   * sent (wrong type, detached, over maxMessage) throws after the ones before it were sent
   * (as far as they fit), none from it on; every error of a batch says in `err.sent` how
   * many of it were sent.
   */
  sendBatch(msgs) {
    this.#check()
    let length
    try {
      length = Array.isArray(msgs) ? msgs.length : -1
    } catch {} // a revoked Proxy
    if (!(length >= 0)) throw this.#batchError(invalidArgType('msgs', 'an array', msgs, this.#path), 0)
    // With a codec, every message is encoded before any is sent: one it cannot encode
    // throws and sends nothing.
    if (this.#codec !== null) msgs = this.#encodeAll(msgs, length)
    if (this.#sends.length > 0) return 0 // after the waiting sendAsync() calls, in order
    // Pack as [u32 length][bytes]… and send with one native call per pack-full.
    const max = this.#maxMessage
    let pack = this.#pack
    let at = 0
    let count = 0
    let sent = 0
    let i = 0
    try {
      for (; i < length; i++) {
        const msg = msgs[i]
        const isString = typeof msg === 'string'
        if (!isString) {
          if (!isUint8Array(msg)) throw invalidArgType(`msgs[${i}]`, 'a string, Buffer or Uint8Array', msg, this.#path)
          checkAttached(`msgs[${i}]`, msg, this.#path)
        }
        // Too large for sure (every UTF-16 unit takes at least one byte): said before any
        // packing space is made for it.
        const least = isString ? msg.length : msg.byteLength
        if (least > max) throw this.#tooLarge(`message ${i}`, least, isString)
        // Room for the worst case: 3 UTF-8 bytes per UTF-16 unit.
        const need = 4 + (isString ? msg.length * 3 : msg.byteLength)
        if (at + need > pack.length) {
          if (count > 0) {
            const n = this.#sendPacked(pack, count)
            sent += n
            if (n < count) return sent
            at = count = 0
          }
          if (need > pack.length) pack = this.#pack = Buffer.allocUnsafeSlow(Math.max(need, pack.length * 2))
        }
        const bytes = isString ? pack.utf8Write(msg, at + 4) : (pack.set(msg, at + 4), msg.byteLength)
        if (bytes > max) throw this.#tooLarge(`message ${i}`, bytes)
        pack[at] = bytes
        pack[at + 1] = bytes >>> 8
        pack[at + 2] = bytes >>> 16
        pack[at + 3] = bytes >>> 24
        at += 4 + bytes
        count++
      }
      if (count > 0) sent += this.#sendPacked(pack, count)
      count = 0
    } catch (err) {
      // msgs[i] cannot be sent (or reading it threw, or the native send failed): the ones
      // packed before it go first, as far as they fit; then the error says how many went.
      let flushed = 0
      if (count > 0) {
        try {
          flushed = this.#sendPacked(pack, count)
        } catch {} // the first error is the one to report
      }
      throw this.#batchError(err, sent + flushed, i)
    } finally {
      // A batch of large messages does not pin its packing area for the handle's life.
      if (pack.length > PACK_KEPT) this.#pack = Buffer.allocUnsafeSlow(PACK_KEPT)
    }
    return sent
  }

  // One message through the codec; its error names the channel.
  #encode(msg) {
    try {
      return this.#codec.encode(msg)
    } catch (err) {
      throw atPath(err, this.#path)
    }
  }

  #encodeAll(msgs, length) {
    const out = new Array(length)
    for (let i = 0; i < length; i++) {
      let msg
      try {
        msg = msgs[i]
      } catch (err) {
        throw this.#batchError(err, 0, i)
      }
      try {
        out[i] = this.#codec.encode(msg)
      } catch (err) {
        if (typeof err?.code === 'string') atPath(err, this.#path, `msgs[${i}]: `)
        throw this.#batchError(err, 0, i)
      }
    }
    return out
  }


  #sendPacked(pack, count) {
    return call(() => native.channelSendPacked(this.#id, pack, count))
  }

  // An error of sendBatch(), coded and telling how many messages of the batch were sent
  // (`err.sent`, and in the message); `i`: the message being handled when it happened.
  #batchError(err, sent, i) {
    if (!(err instanceof Error) || typeof err.code !== 'string') {
      // Reading msgs[i] threw (a getter, a Proxy): coded, with what it threw as the cause.
      err = invalidArgValue(`msgs[${i}]`, 'could not be read', undefined, this.#path, { cause: err })
    }
    if (err.sent === undefined) {
      // Messages go in order and stop at the first that does not: the first `sent` went.
      err.message += sent === 0 ? '; none of the batch was sent (err.sent = 0)' : `; the first ${sent} message(s) of the batch were sent (err.sent), none after them`
      err.sent = sent
    }
    return err
  }

  /** Sends one message, waiting for room when the channel is full. */
  sendAsync(msg, options) {
    try {
      this.#check()
      const o = checkOptions('options', options, ['timeout', 'signal'], this.#path)
      const timeout = checkTimeout('options.timeout', o.timeout, this.#path)
      const signal = checkSignal(o.signal, this.#path)
      if (this.#codec !== null) msg = this.#encode(msg)
      if (this.#sends.length === 0 && this.#trySend(msg)) return Promise.resolve()
      const bytes = this.#checkMessage(msg)
      if (signal?.aborted) return Promise.reject(abortError(signal))
      // Bytes are copied now: the caller may reuse its buffer, or it may be a consume() view
      // that is detached before room appears.
      const queued = typeof msg === 'string' ? msg : Buffer.from(msg)
      return this.#pend(this.#sends, SPACE, { msg: queued, bytes }, timeout, signal, 'room in the channel')
    } catch (err) {
      return Promise.reject(err)
    }
  }

  // Turns the `n` messages the native call left in the receive area into results: Buffers
  // are views of one copy per batch (the receive area is reused).
  #take(n, encoding) {
    const lens = this.#lens
    const rx = this.#rx
    const out = new Array(n)
    let at = 0
    if (encoding) {
      for (let i = 0; i < n; i++) {
        out[i] = rx.toString(encoding, at, at + lens[i])
        at += lens[i]
      }
      return out
    }
    if (n === 1) {
      const len = lens[0]
      const copy = Buffer.allocUnsafe(len)
      // A short message is copied faster by this loop than by a call into C++.
      if (len <= 64) for (let i = 0; i < len; i++) copy[i] = rx[i]
      else rx.copy(copy, 0, 0, len)
      out[0] = copy
      return out
    }
    let bytes = 0
    for (let i = 0; i < n; i++) bytes += lens[i]
    const copy = Buffer.allocUnsafe(bytes)
    rx.copy(copy, 0, 0, bytes)
    for (let i = 0; i < n; i++) {
      out[i] = copy.subarray(at, at + lens[i])
      at += lens[i]
    }
    return out
  }

  // One native receive: `timeout` false returns at once, null waits without limit. Messages
  // above 4 KiB come back as Buffers of their own (one copy, see src/napi/fast.rs); a batch that
  // starts with one goes on taking what waits, without blocking.
  #receiveNative(max, encoding, timeout) {
    this.#checkNotLent()
    const wait = timeout === false ? -1 : (timeout ?? Infinity)
    for (;;) {
      let got
      try {
        got = fast.channelReceive(this.#id, this.#rx, this.#lens, max, encoding === undefined, wait)
      } catch (err) {
        throw fromNative(err)
      }
      if (typeof got !== 'number') {
        if (max === 1) return [got]
        const out = got // an array of Buffers
        while (out.length < max) {
          const more = this.#receiveNative(max - out.length, encoding, false)
          if (more.length === 0) break
          for (const msg of more) out.push(msg)
        }
        return out
      }
      if (got >= 0) return this.#take(got, encoding)
      this.#rx = Buffer.allocUnsafeSlow(Math.max(-got, this.#rx.length * 2)) // never happens for max <= maxMessage
    }
  }

  // A receive as the handle's codec says: the messages as sent (Buffers, or strings with an
  // encoding), or decoded. A message the codec cannot decode throws ERR_CODEC_DECODE after
  // it was taken: `err.raw` holds the bytes of every message that call took, `err.index`
  // the one that failed.
  #receive(max, encoding, timeout) {
    const codec = this.#codec
    if (codec === null) return this.#receiveNative(max, encoding, timeout)
    // Buffers always, so that `err.raw` holds the bytes sent; a text codec's messages are
    // decoded as UTF-8 strictly (bytes that are not UTF-8 are ERR_CODEC_DECODE, not U+FFFD).
    const raw = this.#receiveNative(max, undefined, timeout)
    const out = new Array(raw.length)
    for (let i = 0; i < raw.length; i++) {
      try {
        out[i] = codec.decode(codec.text ? utf8(raw[i]) : raw[i])
      } catch (err) {
        err.message = `${this.#path}: message ${i} of ${raw.length} taken: ${err.message}`
        err.raw = raw
        err.index = i
        throw err
      }
    }
    return out
  }

  // `options.encoding`, which a handle with a codec does not take (its messages are decoded).
  #encodingOption(encoding) {
    const checked = checkEncoding(encoding, this.#path)
    if (checked !== undefined && this.#codec !== null) {
      throw invalidArgValue('options.encoding', `cannot be used on a channel opened with a codec (${this.#codec.name}): its messages are decoded`, encoding, this.#path)
    }
    return checked
  }

  /**
   * Takes up to `max` waiting messages (default all, up to 4096) without blocking; an empty
   * array when none wait. The first call makes this handle the consumer
   * (`ERR_CONSUMER_BUSY` if another live one is). Messages are Buffers, or strings with
   * `{ encoding }`, or decoded values with a codec.
   */
  receiveBatch(max = MAX_BATCH, options) {
    this.#check()
    checkCount('max', max, this.#path)
    const encoding = this.#encodingOption(checkOptions('options', options, ['encoding'], this.#path).encoding)
    return this.#receive(Math.min(max, MAX_BATCH), encoding, false)
  }

  /** The next message, or null if none waits (never blocks). */
  receive(options) {
    this.#check()
    const encoding = this.#encodingOption(checkOptions('options', options, ['encoding'], this.#path).encoding)
    const got = this.#receive(1, encoding, false)
    return got.length === 0 ? null : got[0]
  }

  /** The next message as a string (UTF-8), or null. */
  receiveString() {
    this.#check()
    if (this.#codec !== null) this.#encodingOption('utf8') // refused: the messages are decoded
    const got = this.#receive(1, 'utf8', false)
    return got.length === 0 ? null : got[0]
  }

  /**
   * Blocks the thread until a message arrives (spins briefly, then sleeps on a futex);
   * null after `timeoutMs`. The lowest-latency receive.
   */
  receiveSync(timeoutMs, options) {
    this.#check()
    const timeout = checkTimeout('timeoutMs', timeoutMs, this.#path)
    const encoding = this.#encodingOption(checkOptions('options', options, ['encoding'], this.#path).encoding)
    const got = this.#receive(1, encoding, timeout ?? null)
    return got.length === 0 ? null : got[0]
  }

  /** Resolves with the next message (rejects with ERR_TIMEOUT / AbortError). */
  recv(options) {
    try {
      this.#check()
      const o = checkOptions('options', options, ['timeout', 'signal', 'encoding'], this.#path)
      const timeout = checkTimeout('options.timeout', o.timeout, this.#path)
      const signal = checkSignal(o.signal, this.#path)
      const encoding = this.#encodingOption(o.encoding)
      if (this.#recvs.length === 0) {
        const got = this.#receive(1, encoding, false)
        if (got.length > 0) return Promise.resolve(got[0])
      }
      if (signal?.aborted) return Promise.reject(abortError(signal))
      return this.#pend(this.#recvs, DATA, { encoding }, timeout, signal, 'a message')
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Zero-copy receive: calls `fn(view)` for the waiting messages, in order (up to `max`,
   * default 4096; never blocks) as far as they lie one after another in the ring (a call
   * stops where the ring wraps: call again until it returns 0), where `view` is a Buffer over the message's
   * bytes inside the shared ring: nothing is copied. A view is valid only while `fn` runs:
   * when `consume` returns, the space goes back to producers and every view is detached
   * (its length reads 0), so copy what you keep. Returns how many messages were taken.
   * If `fn` returns `false`, that message is not taken: it and the ones after it stay
   * queued, and `consume` returns. If `fn` throws, the messages after the one it threw on
   * stay queued. Receiving from this channel inside `fn` throws `ERR_INVALID_STATE`.
   */
  consume(fn, max = MAX_BATCH) {
    this.#check()
    checkFunction('fn', fn, this.#path)
    checkCount('max', max, this.#path)
    this.#checkNotLent()
    const meta = this.#meta
    let view
    try {
      view = fast.channelBorrow(this.#id, meta, Math.min(max, MAX_BATCH))
    } catch (err) {
      throw fromNative(err)
    }
    if (view === undefined) return 0
    const n = meta[0]
    this.#lent = view
    this.#lentDelivered = 0
    let delivered = 0
    let failed = true
    try {
      // close() or releaseConsumer() inside `fn` ends the loan early (see #endLoan).
      while (this.#lent === view && delivered < n) {
        const at = 1 + 2 * delivered++
        this.#lentDelivered = delivered
        if (fn(Buffer.from(view, meta[at], meta[at + 1])) === false && this.#lent === view) {
          // Refused: this message stays queued, and so do the ones after it.
          this.#lentDelivered = --delivered
          break
        }
      }
      failed = false
    } finally {
      // Only this call's loan (a nested consume() after releaseConsumer() ended its own).
      if (this.#lent === view) {
        // An error of fn's own is the one to report, not a later one of the release.
        if (failed) {
          try {
            this.#endLoan()
          } catch {}
        } else {
          this.#endLoan()
        }
      }
    }
    return delivered
  }

  // Ends consume()'s loan: detaches the view, frees the messages its callback was given and
  // puts the others back in the queue. Before close() or releaseConsumer() inside the
  // callback, so that no message it was not given is lost.
  #endLoan() {
    const view = this.#lent
    if (view === null) return
    this.#lent = null
    try {
      fast.channelRelease(this.#id, view, this.#lentDelivered)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** `for await (const msg of channel)`: receives until the channel is closed. */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      try {
        yield await this.recv()
      } catch (err) {
        if (err.code === 'ERR_CLOSED') return
        throw err
      }
    }
  }

  /** An async iterator of messages with options (`encoding`, `signal`). */
  async *messages(options) {
    const o = checkOptions('options', options, ['encoding', 'signal', 'timeout'], this.#path)
    for (;;) yield await this.recv({ encoding: o.encoding, signal: o.signal, timeout: o.timeout })
  }

  /**
   * Resolves once a message waits for this handle, which becomes the consumer as a receive
   * would; takes nothing. With `consume()` after it, a message leaves the channel only when
   * the callback accepts it (returns anything but `false`): how to hand messages on to a
   * destination that may fail without losing one. It may resolve for a record the next
   * `consume()` only skips (a dead producer's): then it returns 0, and you wait again.
   * Rejects with ERR_TIMEOUT, an AbortError, or ERR_CLOSED when the handle closes.
   */
  waitForMessage(options) {
    try {
      this.#check()
      const o = checkOptions('options', options, ['timeout', 'signal'], this.#path)
      const timeout = checkTimeout('options.timeout', o.timeout, this.#path)
      const signal = checkSignal(o.signal, this.#path)
      this.#checkNotLent()
      if (!native.channelInfo(this.#id).isConsumer) call(() => native.channelClaimConsumer(this.#id))
      if (this.#recvs.length === 0 && call(() => native.channelHasMessage(this.#id))) return Promise.resolve()
      if (signal?.aborted) return Promise.reject(abortError(signal))
      return this.#pend(this.#recvs, DATA, { peek: true }, timeout, signal, 'a message')
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Becomes the consumer. Rejects with `ERR_CONSUMER_BUSY` if another live handle is,
   * unless `wait: true`: then resolves when that consumer closes or dies.
   */
  claimConsumer(options) {
    try {
      this.#check()
      const o = checkOptions('options', options, ['wait', 'timeout'], this.#path)
      const timeout = checkTimeout('options.timeout', o.timeout, this.#path)
      if (!o.wait) {
        call(() => native.channelClaimConsumer(this.#id))
        return Promise.resolve()
      }
      return new Promise((resolve, reject) => {
        const claim = { reject }
        this.#claims.add(claim)
        try {
          call(() =>
            native.channelClaimConsumerAsync(this.#id, timeout, (err) => {
              // Closed meanwhile: close() rejected it; false gives the role straight back.
              if (!this.#claims.delete(claim) || this.#closed) return false
              if (err) {
                reject(err.code === 'ERR_TIMEOUT' ? timeoutError(this.#path, timeout, 'the consumer role') : fromNative(err))
                return false
              }
              native.channelSetConsumer(this.#id)
              resolve()
              return true
            }),
          )
        } catch (err) {
          this.#claims.delete(claim)
          throw err
        }
      })
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Gives up the consumer role so another handle can take it. */
  releaseConsumer() {
    this.#check()
    this.#endLoan()
    native.channelReleaseConsumer(this.#id)
  }

  #pend(queue, which, extra, timeout, signal, what) {
    return new Promise((resolve, reject) => {
      const waiter = { ...extra, resolve, reject, timer: null, signal, onAbort: null }
      queue.push(waiter)
      try {
        this.#waitersChanged(which)
      } catch (err) {
        queue.pop() // no notifier thread: nothing would serve it
        throw err
      }
      if (timeout !== undefined) {
        waiter.timer = longTimeout(() => {
          this.#drop(queue, which, waiter)
          reject(timeoutError(this.#path, timeout, what))
        }, timeout)
      }
      if (signal) {
        waiter.onAbort = () => {
          this.#drop(queue, which, waiter)
          reject(abortError(signal))
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
    })
  }

  #settle(waiter) {
    clearLongTimeout(waiter.timer)
    if (waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort)
  }

  #drop(queue, which, waiter) {
    const i = queue.indexOf(waiter)
    if (i < 0) return
    queue.splice(i, 1)
    this.#settle(waiter)
    // The next send in line may fit where the dropped one did not: try it (after the
    // dropped one's rejection, which the caller makes next).
    if (which === SPACE && i === 0 && queue.length > 0) queueMicrotask(() => this.#onNotify(SPACE))
    else this.#waitersChanged(which)
  }

  // Starts, restarts or stops a notifier thread and the keep-alive handle to match the
  // waiting calls. Throws (changing nothing) if the thread cannot be started.
  #waitersChanged(which) {
    if (this.#closed) return
    const queue = which === SPACE ? this.#sends : this.#recvs
    const index = which === SPACE ? 1 : 0
    if (queue.length > 0 && !this.#notifiers[index]) {
      const bytes = which === SPACE ? queue[0].bytes : 0
      call(() => native.channelStartNotifier(this.#id, which, bytes, () => this.#onNotify(which)))
      this.#notifiers[index] = true
      this.#spaceNeed = bytes
    }
    // The space notifier waits for room for the first waiting send: a new first one (the
    // previous was sent, timed out or aborted) has it wait for its own size.
    if (which === SPACE && queue.length > 0 && queue[0].bytes !== this.#spaceNeed) {
      this.#spaceNeed = queue[0].bytes
      native.channelSetSpaceNeed(this.#id, this.#spaceNeed)
    }
    const pending = this.#recvs.length + this.#sends.length > 0
    if (pending && !this.#keepAlive) this.#keepAlive = setInterval(() => {}, MAX_TIMER_MS)
    else if (!pending && this.#keepAlive) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = null
    }
    if (queue.length > 0) {
      if (this.#lingers[index]) {
        clearTimeout(this.#lingers[index])
        this.#lingers[index] = null
      }
    } else if (this.#notifiers[index] && !this.#lingers[index]) {
      this.#lingers[index] = setTimeout(() => {
        this.#lingers[index] = null
        const q = which === SPACE ? this.#sends : this.#recvs
        if (!this.#closed && q.length === 0) {
          native.channelStopNotifier(this.#id, which)
          this.#notifiers[index] = false
        }
      }, NOTIFIER_LINGER_MS)
      this.#lingers[index].unref()
    }
  }

  #onNotify(which) {
    if (this.#closed) return
    try {
      if (which === DATA) this.#serveRecvs()
      else this.#serveSends()
    } finally {
      this.#waitersChanged(which)
    }
  }

  #serveRecvs() {
    while (this.#recvs.length > 0) {
      const waiter = this.#recvs[0]
      if (waiter.peek) {
        // waitForMessage(): the notifier saw something for the consumer; take nothing.
        this.#recvs.shift()
        this.#settle(waiter)
        waiter.resolve()
        continue
      }
      let got
      try {
        got = this.#receive(1, waiter.encoding, false)
      } catch (err) {
        this.#recvs.shift()
        this.#settle(waiter)
        waiter.reject(err)
        continue
      }
      if (got.length === 0) return
      const msg = got[0]
      this.#recvs.shift()
      this.#settle(waiter)
      waiter.resolve(msg)
    }
  }

  #serveSends() {
    while (this.#sends.length > 0) {
      const waiter = this.#sends[0]
      let sent
      try {
        sent = this.#trySend(waiter.msg)
      } catch (err) {
        this.#sends.shift()
        this.#settle(waiter)
        waiter.reject(err)
        continue
      }
      if (!sent) return
      this.#sends.shift()
      this.#settle(waiter)
      waiter.resolve()
    }
  }

  /** Closes the handle (giving up the consumer role); pending calls reject with ERR_CLOSED. */
  close() {
    if (this.#closed) return
    this.#closed = true
    finalizer.unregister(this)
    const err = closedError(this.#path)
    for (const waiter of [...this.#recvs, ...this.#sends]) {
      this.#settle(waiter)
      waiter.reject(err)
    }
    for (const claim of this.#claims) claim.reject(err)
    this.#claims.clear()
    this.#recvs = []
    this.#sends = []
    try {
      this.#endLoan()
    } catch {} // closing anyway: the native close releases what is left
    if (this.#keepAlive) clearInterval(this.#keepAlive)
    for (const t of this.#lingers) if (t) clearTimeout(t)
    native.channelClose(this.#id)
  }

  [Symbol.dispose]() {
    this.close()
  }

  get [Symbol.toStringTag]() {
    return 'Channel'
  }
}

module.exports = { Channel }
