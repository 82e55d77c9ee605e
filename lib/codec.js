'use strict'

// Codecs: how JS values become bytes in shared memory and back. One module for every
// structure (SharedMap's entries, SharedObject's value, Channel's messages).
//
// Every stored value carries a one-byte type tag beside its bytes (in a map entry's header,
// in a value segment's header). The tags are part of the file format: never renumber them.
//
//   tag  payload              decoded as
//   0    bytes                Buffer
//   1    UTF-8 text           string
//   2    float64 LE           number (NaN, ±Infinity and -0 included)
//   3    -                    true
//   4    -                    false
//   5    -                    null
//   6    UTF-8 JSON text      JSON.parse of it
//   7    v8.serialize bytes   v8.deserialize of them (structured clone)
//   8    a custom codec's     codec.decode(Buffer)
//   9    bytes                Uint8Array (not a Buffer)
//
// The native side makes and reads tags 0-6 and 9 directly (a string, a number, a Buffer);
// this module does JSON, v8 and custom codecs, and the refusals.

const v8 = require('node:v8')
const { coded, invalidArgType, invalidArgValue } = require('./errors.js')
const { checkAttached, isUint8Array } = require('./common.js')

const TAG = Object.freeze({
  BYTES: 0,
  STRING: 1,
  NUMBER: 2,
  TRUE: 3,
  FALSE: 4,
  NULL: 5,
  JSON: 6,
  V8: 7,
  CUSTOM: 8,
  UINT8ARRAY: 9,
})

// Codec ids stored in a map's header (src/map/mod.rs).
const CODEC_ID = Object.freeze({ default: 0, json: 1, v8: 2, custom: 3 })

function isPlainObject(value) {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

// An array or a plain object. A Proxy whose traps throw (or a revoked one) is neither: the
// caller refuses it with a coded error rather than the trap's own TypeError.
function isJsonShaped(value) {
  try {
    return Array.isArray(value) || isPlainObject(value)
  } catch {
    return false
  }
}

function encodeError(codecName, err) {
  const e = coded(Error, 'ERR_CODEC_ENCODE', `The ${codecName} codec cannot encode this value: ${err?.message ?? err}`)
  e.cause = err
  return e
}

function decodeError(codecName, err) {
  const e = coded(Error, 'ERR_CODEC_DECODE', `The ${codecName} codec cannot decode a stored value: ${err?.message ?? err}`)
  e.cause = err
  return e
}

function stringify(value, codecName) {
  let text
  try {
    text = JSON.stringify(value)
  } catch (err) {
    throw encodeError(codecName, err) // a cycle, a BigInt inside, a throwing toJSON
  }
  if (typeof text !== 'string') throw encodeError(codecName, new TypeError(`JSON has no form for ${typeof value}`))
  return text
}

// A codec turns a value into `{ tag, payload }` through encode(), which returns the payload
// and leaves the tag in `codec.tag` (no object per call on the hot path). The payload is a
// string (tags 1 and 6), a number (tag 2), a Uint8Array (tags 0, 7, 8, 9) or null.
class Codec {
  constructor(name, id) {
    this.name = name
    this.id = id
    this.tag = TAG.NULL
  }

  // Decodes what the native side returned for a value of type `tag`: for tags 0-6 it is
  // already the value, but for JSON (a string to parse), Uint8Array (a Buffer to view),
  // v8 and custom (Buffers to decode).
  decode(tag, raw) {
    switch (tag) {
      case TAG.JSON:
        try {
          return JSON.parse(raw)
        } catch (err) {
          throw decodeError('JSON', err)
        }
      case TAG.UINT8ARRAY:
        return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
      case TAG.V8:
        try {
          return v8.deserialize(raw)
        } catch (err) {
          throw decodeError('v8', err)
        }
      case TAG.CUSTOM:
        return this.decodeCustom(raw)
      case TAG.BYTES:
      case TAG.STRING:
      case TAG.NUMBER:
      case TAG.TRUE:
      case TAG.FALSE:
      case TAG.NULL:
        return raw
      default:
        throw decodeError(this.name, new Error(`unknown type tag ${tag}`))
    }
  }

  decodeCustom() {
    throw coded(Error, 'ERR_CODEC_DECODE', 'A value was stored by a custom codec: open with that codec to read it')
  }
}

// Strings, Buffers, Uint8Arrays, numbers, booleans and null as themselves; plain objects
// and arrays as JSON. Anything JSON would silently change (a Map, a Date, a class
// instance, a typed array other than Uint8Array) is refused with a pointer to 'v8'.
class DefaultCodec extends Codec {
  constructor() {
    super('default', CODEC_ID.default)
  }

  // if-chains on `typeof x === '…'` rather than a switch on `typeof x`: V8 turns each such
  // comparison into a type check, but calls its Typeof builtin for a switch (5 % of a set
  // of an object, measured).
  encode(value) {
    if (typeof value === 'string') {
      this.tag = TAG.STRING
      return value
    }
    if (typeof value === 'object') {
      if (value === null) {
        this.tag = TAG.NULL
        return null
      }
      if (isUint8Array(value)) {
        checkAttached('value', value)
        this.tag = Buffer.isBuffer(value) ? TAG.BYTES : TAG.UINT8ARRAY
        return value
      }
      if (isJsonShaped(value)) {
        const text = stringify(value, 'default')
        this.tag = TAG.JSON
        return text
      }
      throw invalidArgType('value', "a string, number, boolean, null, Buffer, Uint8Array, plain object or array (use codec: 'v8' for Map, Set, Date, typed arrays and class instances)", value)
    }
    if (typeof value === 'number') {
      this.tag = TAG.NUMBER
      return value
    }
    if (typeof value === 'boolean') {
      this.tag = value ? TAG.TRUE : TAG.FALSE
      return null
    }
    throw invalidArgType('value', "a string, number, boolean, null, Buffer, Uint8Array, plain object or array (use codec: 'v8' for BigInt)", value)
  }
}

class JsonCodec extends Codec {
  constructor() {
    super('json', CODEC_ID.json)
  }

  encode(value) {
    const text = stringify(value, 'json')
    this.tag = TAG.JSON
    return text
  }
}

class V8Codec extends Codec {
  constructor() {
    super('v8', CODEC_ID.v8)
  }

  encode(value) {
    let bytes
    try {
      bytes = v8.serialize(value)
    } catch (err) {
      throw encodeError('v8', err) // functions, symbols, native objects
    }
    this.tag = TAG.V8
    return bytes
  }
}

class CustomCodec extends Codec {
  // `name`: the codec's `name` property, read once by resolveCodec.
  constructor(custom, name = '') {
    super(name === '' ? 'custom' : `custom (${name})`, CODEC_ID.custom)
    this.customName = name
    this.custom = custom
  }

  encode(value) {
    let out
    try {
      out = this.custom.encode(value)
    } catch (err) {
      throw encodeError(this.name, err)
    }
    if (typeof out === 'string') out = Buffer.from(out, 'utf8')
    // (Asked without running the result's code: a Proxy around a Buffer is not one.)
    if (!isUint8Array(out)) {
      throw encodeError(this.name, new TypeError(`encode() returned ${out === null ? 'null' : typeof out}, not a Buffer, Uint8Array or string`))
    }
    checkAttached('the result of encode()', out)
    this.tag = TAG.CUSTOM
    return out
  }

  decodeCustom(raw) {
    try {
      return this.custom.decode(raw)
    } catch (err) {
      throw decodeError(this.name, err)
    }
  }
}

const shared = {
  default: new DefaultCodec(),
  json: new JsonCodec(),
  v8: new V8Codec(),
}

// The codec an option names: 'default' | 'json' | 'v8' | { encode, decode, name? }. `at`:
// the path being opened, named in the messages. The option's properties are read once,
// inside a try: a getter or a Proxy trap that throws gets a coded error (its `cause`).
function resolveCodec(option, name = 'options.codec', at) {
  if (option === undefined) return shared.default
  if (typeof option === 'string') {
    if (Object.hasOwn(shared, option)) return shared[option]
    throw invalidArgValue(name, "must be 'default', 'json', 'v8' or an object with encode() and decode()", option, at)
  }
  if (option !== null && typeof option === 'object') {
    let encode, decode, codecName
    try {
      encode = option.encode
      decode = option.decode
      codecName = option.name
    } catch (err) {
      throw invalidArgValue(name, 'could not be read (a getter or Proxy trap threw)', option, at, { cause: err })
    }
    if (typeof encode === 'function' && typeof decode === 'function') {
      if (codecName !== undefined && (typeof codecName !== 'string' || Buffer.byteLength(codecName) > 64)) {
        throw invalidArgValue(`${name}.name`, 'must be a string of at most 64 bytes', codecName, at)
      }
      return new CustomCodec(option, codecName)
    }
  }
  throw invalidArgType(name, "'default', 'json', 'v8' or an object with encode() and decode() methods", option, at)
}

// A codec for Channel messages, which carry no type tag: every message is the one codec's
// bytes. `encode(value)` gives a string (JSON, sent as UTF-8) or a Uint8Array; `decode(raw)`
// takes what the receive gave (a string when `text`, else a Buffer).
class MessageCodec {
  constructor(codec, tag) {
    this.codec = codec
    this.name = codec.name
    this.tag = tag
    this.text = tag === TAG.JSON
  }

  encode(value) {
    return this.codec.encode(value)
  }

  decode(raw) {
    return this.codec.decode(this.tag, raw)
  }
}

// The codec a Channel option names: 'json' | 'v8' | { encode, decode, name? }; null (raw
// strings and bytes) for undefined or 'default', which for messages means no codec at all:
// 'default' tells values apart by their type tag, which messages do not carry.
function resolveMessageCodec(option, name = 'options.codec', at) {
  if (option === undefined || option === 'default') return null
  const codec = resolveCodec(option, name, at)
  const tag = codec === shared.json ? TAG.JSON : codec === shared.v8 ? TAG.V8 : TAG.CUSTOM
  return new MessageCodec(codec, tag)
}

module.exports = { TAG, CODEC_ID, Codec, resolveCodec, resolveMessageCodec }
