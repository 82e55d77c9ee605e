'use strict'

// Errors with a stable `code`, in one place. Native errors arrive as plain `Error`s with a
// `code`; `fromNative` gives the ones Node users expect as another class (a too-large
// value is a RangeError, a wrong type a TypeError) their proper class.
//
// Argument errors describe the value they refuse without ever running its code: no
// String(), no property read, no Proxy trap. An argument whose conversion throws (an
// object without a prototype, a revoked Proxy, a throwing toString) must still get a coded
// error, not the TypeError of its own conversion.

const { inspect, types } = require('node:util')

function coded(Ctor, code, message, options) {
  const err = new Ctor(message, options)
  err.code = code
  return err
}

const classByCode = {
  ERR_VALUE_TOO_LARGE: RangeError,
  ERR_MESSAGE_TOO_LARGE: RangeError,
  ERR_OUT_OF_RANGE: RangeError,
  ERR_INVALID_ARG_TYPE: TypeError,
  ERR_INVALID_ARG_VALUE: TypeError,
}

function fromNative(err) {
  const Ctor = err && classByCode[err.code]
  if (!Ctor || err instanceof Ctor) return err
  const fixed = coded(Ctor, err.code, err.message)
  fixed.stack = `${Ctor.name}: ${err.message}\n${String(err.stack).split('\n').slice(1).join('\n')}`
  return fixed
}

// How util.inspect shows a refused value: short, one line, never calling its getters.
const INSPECT = { depth: 0, maxArrayLength: 4, maxStringLength: 40, breakLength: Infinity, customInspect: false, getters: false, showProxy: true }

// A short description of any value, safe for values whose conversion throws.
function show(value) {
  try {
    return inspect(value, INSPECT)
  } catch {
    return 'a value that cannot be displayed'
  }
}

// As Node's own ERR_INVALID_ARG_TYPE messages say what they received.
function describe(value) {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'object') {
    if (types.isProxy(value)) return 'a Proxy'
    let name
    try {
      // An own `constructor` property could be a getter: only the prototype's is read.
      const proto = Object.getPrototypeOf(value)
      const ctor = proto === null ? undefined : Object.getOwnPropertyDescriptor(proto, 'constructor')?.value
      name = typeof ctor === 'function' ? ctor.name : undefined
    } catch {}
    return name ? `an instance of ${name}` : show(value)
  }
  return `type ${typeof value} (${show(value)})`
}

// "<path>: " before a message about a handle's argument, so that it names the segment.
function prefix(at) {
  return at === undefined ? '' : `${at}: `
}

function invalidArgType(name, expected, actual, at) {
  return coded(TypeError, 'ERR_INVALID_ARG_TYPE', `${prefix(at)}The "${name}" argument must be ${expected}. Received ${describe(actual)}`)
}

// A number outside what the argument allows.
function outOfRange(name, reason, actual, at) {
  return coded(RangeError, 'ERR_OUT_OF_RANGE', `${prefix(at)}The "${name}" argument ${reason}. Received ${show(actual)}`)
}

// An argument of the right type that cannot be used (an empty path, an unknown encoding).
function invalidArgValue(name, reason, actual, at, options) {
  return coded(TypeError, 'ERR_INVALID_ARG_VALUE', `${prefix(at)}The "${name}" argument ${reason}. Received ${show(actual)}`, options)
}

// `err` with `<at>: <what>` before its message (once), for an error that came from a
// codec or another callee that does not know the handle's path. Returns `err`.
function atPath(err, at, what = '') {
  const head = `${at}: ${what}`
  if (err instanceof Error && typeof err.message === 'string' && !err.message.startsWith(head)) {
    try {
      err.message = head + err.message
    } catch {}
  }
  return err
}

function timeoutError(path, ms, what) {
  return coded(Error, 'ERR_TIMEOUT', `${path}: timed out after ${ms} ms waiting for ${what}`)
}

function closedError(path) {
  return coded(Error, 'ERR_CLOSED', `${path}: segment is closed`)
}

// As Node's own APIs do: an `AbortError` whose `cause` is the signal's reason.
function abortError(signal) {
  let reason
  try {
    reason = signal?.reason
  } catch {}
  const err = new Error('The operation was aborted', reason === undefined ? undefined : { cause: reason })
  err.name = 'AbortError'
  err.code = 'ABORT_ERR'
  return err
}

module.exports = { coded, fromNative, show, atPath, invalidArgType, invalidArgValue, outOfRange, timeoutError, closedError, abortError }
