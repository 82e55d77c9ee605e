'use strict'

// Argument checks and error plumbing shared by SharedObject and Channel. Checks never run
// an argument's own code (no String(), no `instanceof`, which a Proxy can trap): what they
// refuse gets a coded error. The optional `at` names the segment in the message.

const { coded, fromNative, show, invalidArgType, invalidArgValue, outOfRange } = require('./errors.js')

// The per-message and per-read calls as plain napi callbacks (src/napi/fast.rs), made once.
// They name the runtime's longest string in ERR_STRING_TOO_LONG.
const fast = require('./native.js').fastApi(require('node:buffer').constants.MAX_STRING_LENGTH)

// Guards the private constructors: instances come from the static factories only.
const INTERNAL = Symbol('share-object.internal')

// %TypedArray%.prototype[Symbol.toStringTag]: the element type of a typed array, and
// undefined for anything else, a Proxy included, without running any of its code.
const typedArrayTag = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag).get

/** Whether `v` is a Uint8Array (a Buffer included), without running any of its code. */
function isUint8Array(v) {
  return typedArrayTag.call(v) === 'Uint8Array'
}

/** Whether a Uint8Array views an ArrayBuffer that was detached (transferred, or a consume() view after its call). */
function isDetached(view) {
  if (view.byteLength !== 0) return false
  const buffer = view.buffer
  if (typeof buffer.detached === 'boolean') return buffer.detached // ES2024 runtimes
  if (buffer.byteLength !== 0) return false
  try {
    new Uint8Array(buffer) // eslint-disable-line no-new -- throws only on a detached buffer
    return false
  } catch {
    return true
  }
}

/** Refuses a Uint8Array over a detached buffer: its bytes are gone, and sending or writing it would silently store nothing. */
function checkAttached(name, view, at) {
  if (isDetached(view)) throw invalidArgValue(name, 'is a view of a detached ArrayBuffer (its bytes are gone: a consume() view kept past its call, or a transferred buffer)', view, at)
  return view
}

function checkPath(p) {
  if (typeof p !== 'string') throw invalidArgType('path', 'a string', p)
  if (p.length === 0) throw invalidArgValue('path', 'must not be empty', p)
  if (p.includes('\0')) throw invalidArgValue('path', 'must not contain a NUL byte', p)
  // path.resolve() would drop such an ending, and open another file than the one named.
  const last = p.slice(p.lastIndexOf('/') + 1)
  if (last === '' || last === '.' || last === '..') throw invalidArgValue('path', 'must name a file, but it ends with "/", "." or ".."', p)
  return p
}

function checkFd(fd) {
  if (!Number.isInteger(fd)) throw invalidArgType('fd', 'an integer', fd)
  if (fd < 0 || fd > 2 ** 31 - 1) throw outOfRange('fd', 'must be a file descriptor from 0 to 2^31 - 1', fd)
  return fd
}

function checkBytes(name, v, at) {
  if (v === undefined) return undefined
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v, at)
  if (!Number.isSafeInteger(v) || v < 0) throw outOfRange(name, 'must be a non-negative integer', v, at)
  return v
}

/** A positive whole number (a count such as `max`). */
function checkCount(name, v, at) {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v, at)
  if (!Number.isInteger(v) || v < 1) throw outOfRange(name, 'must be a positive integer', v, at)
  return v
}

function checkTimeout(name, v, at) {
  if (v === undefined || v === null || v === Infinity) return undefined
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v, at)
  if (Number.isNaN(v) || v < 0) throw outOfRange(name, 'must be a non-negative number of milliseconds', v, at)
  return v
}

function checkSignal(signal, at) {
  if (signal === undefined) return undefined
  let ok = false
  if (signal !== null && typeof signal === 'object') {
    try {
      ok = typeof signal.aborted === 'boolean' && typeof signal.addEventListener === 'function'
    } catch {}
  }
  if (!ok) throw invalidArgType('options.signal', 'an AbortSignal', signal, at)
  return signal
}

/**
 * An options argument, read once: the values of `keys` in a plain object (`{}` for
 * undefined). Reading a property that throws (a getter, a revoked Proxy) is a coded error
 * whose `cause` is what it threw.
 */
function checkOptions(name, v, keys, at) {
  if (v === undefined) return {}
  if (v === null || typeof v !== 'object') throw invalidArgType(name, 'an object', v, at)
  const out = {}
  for (const key of keys) {
    try {
      out[key] = v[key]
    } catch (err) {
      throw invalidArgValue(name, `could not be read: reading "${key}" threw ${showThrown(err)}`, v, at, { cause: err })
    }
  }
  return out
}

// What a throw was, in one line: "TypeError: …" for an Error, else the value shown.
function showThrown(err) {
  try {
    if (err instanceof Error && typeof err.message === 'string') return `${err.name}: ${err.message}`.split('\n')[0]
  } catch {}
  return show(err)
}

function checkFunction(name, v, at) {
  if (typeof v !== 'function') throw invalidArgType(name, 'a function', v, at)
  return v
}

// Longest delay Node's timers take; beyond it they fire after 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1

// setTimeout for any delay: a deadline beyond MAX_TIMER_MS is reached in steps. Returns a
// handle for clearLongTimeout(); `ref: false` lets the process exit while it runs.
function longTimeout(fn, ms, ref = true) {
  const handle = { timer: null }
  const deadline = performance.now() + ms
  const arm = () => {
    const left = deadline - performance.now()
    handle.timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fn, Math.max(0, left))
    if (!ref) handle.timer.unref()
  }
  arm()
  return handle
}

function clearLongTimeout(handle) {
  if (handle) clearTimeout(handle.timer)
}

function call(fn) {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

module.exports = {
  INTERNAL,
  MAX_TIMER_MS,
  fast,
  call,
  coded,
  longTimeout,
  clearLongTimeout,
  isUint8Array,
  checkAttached,
  checkFd,
  checkPath,
  checkBytes,
  checkCount,
  checkTimeout,
  checkSignal,
  checkOptions,
  checkFunction,
}
