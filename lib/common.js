'use strict'

// Argument checks and error plumbing shared by SharedObject and Channel.

const { fromNative, invalidArgType, invalidArgValue, outOfRange } = require('./errors.js')

// The per-message and per-read calls as plain napi callbacks (src/napi/fast.rs), made once.
const fast = require('./native.js').fastApi()

// Guards the private constructors: instances come from the static factories only.
const INTERNAL = Symbol('share-object.internal')

function checkPath(p) {
  if (typeof p !== 'string') throw invalidArgType('path', 'a string', p)
  if (p.length === 0) throw invalidArgValue('path', 'must not be empty', p)
  if (p.includes('\0')) throw invalidArgValue('path', 'must not contain a NUL byte', p)
  return p
}

function checkFd(fd) {
  if (!Number.isInteger(fd)) throw invalidArgType('fd', 'an integer', fd)
  if (fd < 0 || fd > 2 ** 31 - 1) throw outOfRange('fd', 'must be a file descriptor from 0 to 2^31 - 1', fd)
  return fd
}

function checkBytes(name, v) {
  if (v === undefined) return undefined
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v)
  if (!Number.isSafeInteger(v) || v < 0) throw outOfRange(name, 'must be a non-negative integer', v)
  return v
}

function checkTimeout(name, v) {
  if (v === undefined || v === null || v === Infinity) return undefined
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v)
  if (Number.isNaN(v) || v < 0) throw outOfRange(name, 'must be a non-negative number of milliseconds', v)
  return v
}

function checkSignal(signal) {
  if (signal === undefined) return undefined
  if (signal === null || typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw invalidArgType('options.signal', 'an AbortSignal', signal)
  }
  return signal
}

function checkObject(name, v) {
  if (v === undefined) return {}
  if (v === null || typeof v !== 'object') throw invalidArgType(name, 'an object', v)
  return v
}

function checkFunction(name, v) {
  if (typeof v !== 'function') throw invalidArgType(name, 'a function', v)
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

module.exports = { INTERNAL, MAX_TIMER_MS, fast, call, longTimeout, clearLongTimeout, checkFd, checkPath, checkBytes, checkTimeout, checkSignal, checkObject, checkFunction }
