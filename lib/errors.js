'use strict'

// Errors with a stable `code`, in one place. Native errors arrive as plain `Error`s with a
// `code`; `fromNative` gives the ones Node users expect as another class (a too-large
// value is a RangeError, a wrong type a TypeError) their proper class.

function coded(Ctor, code, message) {
  const err = new Ctor(message)
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

function describe(value) {
  if (value === null) return 'null'
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`
  if (typeof value === 'function') return 'a function'
  return `type ${typeof value} (${String(value).slice(0, 40)})`
}

function invalidArgType(name, expected, actual) {
  return coded(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${describe(actual)}`)
}

// A number outside what the argument allows.
function outOfRange(name, reason, actual) {
  return coded(RangeError, 'ERR_OUT_OF_RANGE', `The "${name}" argument ${reason}. Received ${String(actual)}`)
}

// An argument of the right type that cannot be used (an empty path, an unknown encoding).
function invalidArgValue(name, reason, actual) {
  return coded(TypeError, 'ERR_INVALID_ARG_VALUE', `The "${name}" argument ${reason}. Received ${JSON.stringify(actual)}`)
}

function timeoutError(path, ms, what) {
  return coded(Error, 'ERR_TIMEOUT', `${path}: timed out after ${ms} ms waiting for ${what}`)
}

function closedError(path) {
  return coded(Error, 'ERR_CLOSED', `${path}: segment is closed`)
}

// As Node's own APIs do: an `AbortError` whose `cause` is the signal's reason.
function abortError(signal) {
  const err = new Error('The operation was aborted', signal?.reason === undefined ? undefined : { cause: signal.reason })
  err.name = 'AbortError'
  err.code = 'ABORT_ERR'
  return err
}

module.exports = { coded, fromNative, invalidArgType, invalidArgValue, outOfRange, timeoutError, closedError, abortError }
