'use strict'

// Argument checks and error plumbing shared by SharedObject and Channel.

const { coded, fromNative, invalidArgType, invalidArgValue } = require('./errors.js')

// The per-message and per-read calls as plain napi callbacks (src/fast.rs), made once.
const fast = require('../binding.js').fastApi()

// Guards the private constructors: instances come from the static factories only.
const INTERNAL = Symbol('share-object.internal')

function checkPath(p) {
  if (typeof p !== 'string') throw invalidArgType('path', 'a string', p)
  if (p.length === 0) throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', 'The "path" argument must not be empty')
  if (p.includes('\0')) throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', `The "path" argument must not contain a NUL byte. Received ${JSON.stringify(p)}`)
  return p
}

function checkBytes(name, v) {
  if (v === undefined) return undefined
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v)
  if (!Number.isSafeInteger(v) || v < 0) throw invalidArgValue(name, 'must be a non-negative integer', v)
  return v
}

function checkTimeout(name, v) {
  if (v === undefined || v === null || v === Infinity) return undefined
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v)
  if (Number.isNaN(v) || v < 0) throw invalidArgValue(name, 'must be a non-negative number of milliseconds', v)
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

function call(fn) {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

module.exports = { INTERNAL, fast, call, checkPath, checkBytes, checkTimeout, checkSignal, checkObject, checkFunction }
