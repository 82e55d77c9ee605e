#!/usr/bin/env node
'use strict'

// The share-object command line: inspect, read, write and watch value segments; send to and
// receive from channels. Exit codes: 0 ok, 1 failed (`share-object: <CODE>: <message>` on
// stderr), 2 usage.

const { parseArgs, inspect } = require('node:util')
const fs = require('node:fs')
const { SharedObject, Channel, SharedMap } = require('..')
const mapCommand = require('./map.js')

const USAGE = `Usage: share-object <command> [options]

Commands:
  info <path> [--json]             what a segment is and holds
  read <path> [--json]             print a value segment's value
  write <path> [value|-] [--json]  set the value (- or no value: read stdin)
  watch <path>                     print each new value as it changes (Ctrl-C stops)
  upgrade <path> [--discard-torn]  convert a value segment of format 1 to format 2
  send <path> [msg|-] [--timeout ms]
                                   send a message to a channel (- or none: stdin)
  recv <path> [--follow] [--timeout ms]
                                   receive a message (with --follow: keep receiving)
  rm <path>                        remove a segment file
  map <get|set|delete|incr|keys|info> <path> …
                                   read and write a SharedMap

Run "share-object <command> --help" for a command's details.`

const COMMANDS = {
  info: {
    usage: 'share-object info <path> [--json]\n\nPrints the kind (value, channel or map), format version, capacity, value length and\ntype or queued bytes, version, and whether a lock holder or consumer is alive.',
    options: { json: { type: 'boolean' } },
    args: [1, 1],
    run: info,
  },
  read: {
    usage: 'share-object read <path> [--json]\n\nPrints the value of a value segment followed by a newline: a string (or bytes) as\nUTF-8, a number, boolean, null, object or array as JSON. With --json, a string is\nprinted as JSON too.',
    options: { json: { type: 'boolean' } },
    args: [1, 1],
    run: read,
  },
  write: {
    usage: 'share-object write <path> [value|-] [--json]\n\nSets the value of a value segment, creating it if needed. With "-" or no value, the\nvalue is read from standard input (as bytes, unchanged). With --json, the value is\nJSON text and what it describes is stored (a number, an object, …).',
    options: { json: { type: 'boolean' } },
    args: [1, 2],
    run: write,
  },
  upgrade: {
    usage: 'share-object upgrade <path> [--discard-torn]\n\nConverts a value segment written by share-object before format 2 into format 2, in\nplace: its value, version, mode and group are kept. Every process that has it open must\nclose it first (ERR_IN_USE). A value left torn by a writer that died mid-write is\nrefused (ERR_WRITER_DIED) unless --discard-torn (the value is then empty). A segment\nalready in format 2 is left as it is. Safe to interrupt and to run again.',
    options: { 'discard-torn': { type: 'boolean' } },
    args: [1, 1],
    run: upgrade,
  },
  watch: {
    usage: 'share-object watch <path>\n\nPrints the current value, then each new value as any process writes it, like\ntail -f. Ctrl-C (SIGINT) stops it with exit code 0.',
    options: {},
    args: [1, 1],
    run: watch,
  },
  send: {
    usage: 'share-object send <path> [msg|-] [--timeout ms]\n\nSends one message to a channel, creating it if needed; waits while the channel is\nfull (--timeout: fails with ERR_TIMEOUT after that many milliseconds). With "-" or\nno message, the message is read from standard input.',
    options: { timeout: { type: 'string' } },
    args: [1, 2],
    run: send,
  },
  recv: {
    usage: 'share-object recv <path> [--follow] [--timeout ms]\n\nBecomes the channel\'s consumer and prints one message (as UTF-8) and a newline.\nWith --follow, keeps printing messages until Ctrl-C. --timeout fails with ERR_TIMEOUT\nwhen no message arrives within that many milliseconds.',
    options: { follow: { type: 'boolean', short: 'f' }, timeout: { type: 'string' } },
    args: [1, 1],
    run: recv,
  },
  map: {
    usage: mapCommand.USAGE,
    options: mapCommand.OPTIONS,
    args: [2, 4],
    run: ([sub, ...rest], values) => {
      if (!mapCommand.SUBCOMMANDS.includes(sub)) throw new UsageError(`map: unknown command ${JSON.stringify(sub)}\n\nUsage: ${mapCommand.USAGE}`)
      return mapCommand.run(sub, rest, values, { out, readStdin, UsageError })
    },
  },
  rm: {
    usage: 'share-object rm <path>\n\nRemoves a segment file (processes that have it open keep working on it).',
    options: {},
    args: [1, 1],
    run: rm,
  },
}

class UsageError extends Error {}

function fail(err) {
  if (err instanceof UsageError) {
    process.stderr.write(`share-object: ${err.message}\n`)
    process.exitCode = 2
    return
  }
  const code = err && err.code ? err.code : 'ERR_UNEXPECTED'
  process.stderr.write(`share-object: ${code}: ${err && err.message ? err.message : String(err)}\n`)
  process.exitCode = 1
}

function timeoutOption(value) {
  if (value === undefined) return undefined
  const ms = Number(value)
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`--timeout must be a number of milliseconds, got ${JSON.stringify(value)}`)
  return ms
}

function readStdin() {
  return fs.readFileSync(0)
}

function out(text) {
  process.stdout.write(text)
}

// Opens whatever kind of segment is at `file`, without creating one.
function openAny(file) {
  try {
    return { kind: 'value', handle: SharedObject.open(file, { create: false, readOnly: true }) }
  } catch (err) {
    if (err.code !== 'ERR_WRONG_KIND') throw err
  }
  try {
    return { kind: 'channel', handle: Channel.open(file, { create: false }) }
  } catch (err) {
    if (err.code !== 'ERR_WRONG_KIND') throw err
  }
  return { kind: 'map', handle: SharedMap.open(file, { create: false, readOnly: true }) }
}

function info([file], values) {
  const { kind, handle } = openAny(file)
  let facts
  if (kind === 'value') {
    facts = {
      path: handle.path,
      kind,
      format: 2,
      capacity: handle.capacity,
      ...valueFacts(handle),
      version: handle.version,
      locked: handle.locked,
    }
  } else if (kind === 'map') {
    const i = handle.info()
    facts = { path: i.path, kind, format: 1, size: i.size, bytes: i.bytes, maxSize: i.maxSize, max: i.max, ttl: i.ttl, codec: i.codec, fileBytes: i.fileBytes }
  } else {
    facts = {
      path: handle.path,
      kind,
      format: 1,
      capacity: handle.capacity,
      maxMessage: handle.maxMessage,
      queued: handle.queued,
      consumer: handle.hasConsumer,
    }
  }
  handle.close()
  if (values.json) {
    out(JSON.stringify(facts) + '\n')
    return
  }
  const width = Math.max(...Object.keys(facts).map((k) => k.length))
  for (const [k, v] of Object.entries(facts)) out(`${k.padEnd(width)}  ${v}\n`)
}

// The value's length and type, or why it cannot be read now (damage): `info` still
// reports the rest.
function valueFacts(handle) {
  let length
  try {
    length = handle.readBuffer().length
  } catch (err) {
    if (err.code !== 'ERR_CORRUPT') throw err
    return { length: null, unreadable: err.code }
  }
  let type
  try {
    type = typeOf(handle.read())
  } catch (err) {
    if (err.code !== 'ERR_CODEC_DECODE' && err.code !== 'ERR_CORRUPT') throw err
    type = 'unreadable here (a custom codec\'s value)'
  }
  return { length, type }
}

// What kind of value read() returned, in words.
function typeOf(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'object') return Object.getPrototypeOf(value) === Object.prototype ? 'object' : value.constructor?.name ?? 'object'
  return typeof value
}

// A value as the CLI prints it: text as it is (unless `json`), else JSON where that is
// exact, else as Node's inspector shows it (a Map or a Date through the v8 codec).
function show(value, json) {
  if (typeof value === 'string' && !json) return value
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype) {
    const text = JSON.stringify(value)
    if (text !== undefined) return text
  }
  return inspect(value, { depth: null })
}

function read([file], values) {
  const obj = SharedObject.open(file, { create: false, readOnly: true })
  out(show(obj.read(), values.json) + '\n')
  obj.close()
}

function write([file, value], values) {
  const input = value === undefined || value === '-' ? readStdin() : value
  let stored = input
  if (values.json) {
    try {
      stored = JSON.parse(String(input))
    } catch (err) {
      throw new UsageError(`write --json: the value is not JSON (${err.message})`)
    }
  }
  const obj = SharedObject.open(file)
  try {
    obj.write(stored)
  } finally {
    obj.close()
  }
}

function upgrade([file], values) {
  const done = SharedObject.upgrade(file, { discardTorn: values['discard-torn'] === true })
  if (!done.converted) {
    out(`${file}: already format 2 (version ${done.version}); nothing to do\n`)
    return
  }
  const torn = done.discardedTorn ? ' (its torn value was discarded: the value is empty)' : ''
  out(`${file}: upgraded to format 2, version ${done.version}${torn}\n`)
}

function watch([file]) {
  // Read-write when allowed: writers then wake us at once (a read-only handle polls).
  let obj
  try {
    obj = SharedObject.open(file, { create: false })
  } catch (err) {
    if (err.code !== 'EACCES' && err.code !== 'EROFS' && err.code !== 'EPERM') throw err
    obj = SharedObject.open(file, { create: false, readOnly: true })
  }
  // Watch first, then print the current value: a write in between is printed, once.
  let printed = -1
  const print = (value, version) => {
    if (version <= printed) return
    printed = version
    out(show(value) + '\n')
  }
  // A value that cannot be read now is reported, and the next write is printed.
  const unreadable = (err) => process.stderr.write(`share-object: ${err.code}: ${err.message}\n`)
  obj.watch(print, { onError: unreadable })
  try {
    let version
    let value
    do {
      version = obj.version
      value = obj.read()
    } while (obj.version !== version)
    print(value, version)
  } catch (err) {
    if (err.code !== 'ERR_CORRUPT' && err.code !== 'ERR_CODEC_DECODE') throw err
    unreadable(err)
  }
  process.once('SIGINT', () => {
    obj.close()
    process.exitCode = 0
  })
}

async function send([file, msg], values) {
  const timeout = timeoutOption(values.timeout)
  const bytes = msg === undefined || msg === '-' ? readStdin() : msg
  const ch = Channel.open(file)
  try {
    await ch.sendAsync(bytes, { timeout })
  } finally {
    ch.close()
  }
}

async function recv([file], values) {
  const timeout = timeoutOption(values.timeout)
  const ch = Channel.open(file, { create: false })
  const ac = new AbortController()
  process.once('SIGINT', () => ac.abort())
  try {
    await ch.claimConsumer()
    do {
      let msg
      try {
        msg = await ch.recv({ timeout, signal: ac.signal })
      } catch (err) {
        if (err.name === 'AbortError') return // Ctrl-C: a clean end
        throw err
      }
      out(msg.toString('utf8') + '\n')
    } while (values.follow)
  } finally {
    ch.close()
  }
}

function rm([file]) {
  SharedObject.unlink(file)
}

async function main(argv) {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(USAGE + '\n')
    if (name === undefined) process.exitCode = 2
    return
  }
  const command = COMMANDS[name]
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}\n\n${USAGE}`)
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true })
  } catch (err) {
    throw new UsageError(`${err.message}\n\nUsage: ${command.usage.split('\n')[0]}`)
  }
  if (parsed.values.help) {
    out(`Usage: ${command.usage}\n`)
    return
  }
  const [min, max] = command.args
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    throw new UsageError(`${name}: expected ${min === max ? min : `${min} to ${max}`} argument(s), got ${parsed.positionals.length}\n\nUsage: ${command.usage.split('\n')[0]}`)
  }
  await command.run(parsed.positionals, parsed.values)
}

main(process.argv.slice(2)).catch(fail)
