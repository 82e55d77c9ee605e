#!/usr/bin/env node
'use strict'

// The share-object command line: inspect, read, write and watch value segments; send to and
// receive from channels; remove segments. Exit codes: 0 ok (also when the reader of our
// output goes away, as `cat` does), 1 failed (`share-object: <CODE>: <message>` on stderr),
// 2 usage, 130 stopped by Ctrl-C (SIGINT).

const { parseArgs, inspect } = require('node:util')
const fs = require('node:fs')
const path = require('node:path')
const tty = require('node:tty')
const { SharedObject, Channel, SharedMap } = require('..')
const mapCommand = require('./map.js')

const USAGE = `Usage: share-object <command> [options]

Commands:
  info <path> [--json]             what a segment is and holds
  read <path> [--json]             print a value segment's value
  write <path> [value|-] [--raw] [--json]
                                   set the value (-: read it from standard input)
  watch <path>                     print each new value as it changes (Ctrl-C stops)
  upgrade <path> [--discard-torn]  convert a value segment of format 1 to format 2
  send <path> [msg|-] [--timeout ms] [--capacity bytes] [--raw]
                                   send a message to a channel (-: from standard input)
  recv <path> [--follow] [--timeout ms]
                                   receive a message (with --follow: keep receiving)
  rm <path> [--force]              remove a segment file
  map <get|set|delete|incr|keys|info> <path> …
                                   read and write a SharedMap

Options: --help (also after a command), --version.`

const STDIN_NOTE = 'With "-", or no value while standard input is not a terminal, the value is read from\nstandard input, and one trailing newline is dropped (as $(...) does; `read` and `recv`\nadd one), so that `echo hi | share-object write f` stores "hi". --raw keeps every byte.'

const COMMANDS = {
  info: {
    usage: 'share-object info <path> [--json]\n\nPrints the kind (value, channel or map), format version, capacity, value length and\ntype or queued bytes, version, and whether a lock holder or consumer is alive.',
    options: { json: { type: 'boolean' } },
    args: ['<path>'],
    run: info,
  },
  read: {
    usage: 'share-object read <path> [--json]\n\nPrints the value of a value segment followed by a newline: a string or bytes as\nthey are, a number, boolean, null, object or array as JSON. With --json, a string is\nprinted as JSON too.',
    options: { json: { type: 'boolean' } },
    args: ['<path>'],
    run: read,
  },
  write: {
    usage: `share-object write <path> [value|-] [--raw] [--json]\n\nSets the value of a value segment, creating it if needed.\n${STDIN_NOTE}\nWith --json, the value is JSON text and what it describes is stored (a number, an\nobject, …).`,
    options: { raw: { type: 'boolean' }, json: { type: 'boolean' } },
    args: ['<path>', '[value]'],
    run: write,
  },
  upgrade: {
    usage: 'share-object upgrade <path> [--discard-torn]\n\nConverts a value segment written by share-object before format 2 into format 2, in\nplace: its value, version, mode and group are kept. Every process that has it open must\nclose it first (ERR_IN_USE). A value left torn by a writer that died mid-write is\nrefused (ERR_WRITER_DIED) unless --discard-torn (the value is then empty). A segment\nalready in format 2 is left as it is. Safe to interrupt and to run again.',
    options: { 'discard-torn': { type: 'boolean' } },
    args: ['<path>'],
    run: upgrade,
  },
  watch: {
    usage: 'share-object watch <path>\n\nPrints the current value, then each new value as any process writes it, like\ntail -f. Ctrl-C (SIGINT) stops it, with exit status 130.',
    options: {},
    args: ['<path>'],
    run: watch,
  },
  send: {
    usage: `share-object send <path> [msg|-] [--timeout ms] [--capacity bytes] [--raw]\n\nSends one message to a channel, creating it if needed (--capacity: its ring size in\nbytes, a power of two from 1024 to 2^30, default 1048576; used only when creating it).\nWaits while the channel is full (--timeout: fails with ERR_TIMEOUT after that many\nmilliseconds).\n${STDIN_NOTE}`,
    options: { timeout: { type: 'string' }, capacity: { type: 'string' }, raw: { type: 'boolean' } },
    args: ['<path>', '[msg]'],
    run: send,
  },
  recv: {
    usage: "share-object recv <path> [--follow] [--timeout ms]\n\nBecomes the channel's consumer and prints one message and a newline. With --follow,\nkeeps printing messages until Ctrl-C (exit status 130). --timeout fails with\nERR_TIMEOUT when no message arrives within that many milliseconds. A message leaves\nthe channel only once it is written out: if the reader of the output goes away\n(`recv --follow f | head -1`), the rest stay queued and recv ends with status 0.",
    options: { follow: { type: 'boolean', short: 'f' }, timeout: { type: 'string' } },
    args: ['<path>'],
    run: recv,
  },
  map: {
    usage: `${mapCommand.USAGE}\n\nA value read from standard input ("-") loses one trailing newline, as for write.`,
    options: mapCommand.OPTIONS,
    args: ['<command>', '<path>', '[key]', '[value]'],
    run: ([sub, ...rest], values) => {
      if (!mapCommand.SUBCOMMANDS.includes(sub)) throw new UsageError(`map: unknown command ${JSON.stringify(sub)} (see "share-object map --help")`)
      return mapCommand.run(sub, rest, values, { out, readStdin: () => valueOf('-', values, `map ${sub}`), UsageError })
    },
  },
  rm: {
    usage: 'share-object rm <path> [--force]\n\nRemoves a share-object segment file of any kind (processes that have it open keep\nworking on it). Anything else is refused with ERR_NOT_A_SEGMENT and left in place;\nwith --force, a file that is not a segment is removed too, after a line on stderr\nsays so (a directory never is).',
    options: { force: { type: 'boolean' } },
    args: ['<path>'],
    run: rm,
  },
}

// A usage error: one line on stderr, exit status 2.
class UsageError extends Error {}

// Standard output was closed by its reader (EPIPE): the command ends quietly, status 0.
class OutputClosed extends Error {}

function fail(err) {
  if (err instanceof OutputClosed) return
  if (err instanceof UsageError) {
    process.stderr.write(`share-object: ${err.message}\n`)
    process.exitCode = 2
    return
  }
  if (err && err.name === 'AbortError') {
    // Ctrl-C: stopped as asked; 128 + SIGINT, as a shell reports a command it interrupted.
    process.exitCode = 130
    return
  }
  const code = err && err.code ? err.code : 'ERR_UNEXPECTED'
  process.stderr.write(`share-object: ${code}: ${err && err.message ? err.message : String(err)}\n`)
  process.exitCode = 1
}

// A --timeout or --capacity value: a non-negative number (a whole one with `whole`).
function numberOption(name, value, whole = false) {
  if (value === undefined) return undefined
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (whole && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be a ${whole ? 'whole number of bytes' : 'number of milliseconds'}, got ${JSON.stringify(value)}`)
  }
  return n
}

// The value to write or send: the argument, or standard input (see STDIN_NOTE).
function valueOf(arg, values, command) {
  if (arg !== undefined && arg !== '-') return arg
  if (tty.isatty(0)) {
    // Waiting silently for a terminal would look like a hang.
    if (arg === undefined) {
      throw new UsageError(`${command}: no value given, and standard input is a terminal (pass the value, pipe it in, or give "-" to type it and end with Ctrl-D)`)
    }
    process.stderr.write('share-object: reading the value from the terminal; end it with Ctrl-D\n')
  }
  const bytes = fs.readFileSync(0)
  if (values.raw || bytes.length === 0 || bytes[bytes.length - 1] !== 0x0a) return bytes
  return bytes.subarray(0, bytes.length - 1)
}

// Writes all of `chunks` to standard output, synchronously (so that nothing is queued in
// memory and an error is known at once). Returns false if nothing could be written because
// the reader went away; throws OutputClosed if it went away part way.
function writeOut(...chunks) {
  let wrote = false
  for (let chunk of chunks) {
    if (typeof chunk === 'string') chunk = Buffer.from(chunk)
    while (chunk.length > 0) {
      let n
      try {
        n = fs.writeSync(1, chunk)
      } catch (err) {
        if (err.code === 'EAGAIN') {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1) // a non-blocking stdout
          continue
        }
        if (err.code !== 'EPIPE') throw err
        if (!wrote) return false
        throw new OutputClosed()
      }
      wrote = true
      chunk = chunk.subarray(n)
    }
  }
  return true
}

function out(...chunks) {
  if (!writeOut(...chunks)) throw new OutputClosed()
}

// Ctrl-C (SIGINT) aborts the returned signal, for the commands that wait: they close what
// they opened and end with status 130. Installed only once they wait (not while reading
// standard input, which a handler could not interrupt).
function interruptedBy() {
  const ac = new AbortController()
  process.once('SIGINT', () => ac.abort())
  return ac.signal
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
  try {
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
  } finally {
    handle.close()
  }
  if (values.json) {
    out(JSON.stringify(facts) + '\n')
    return
  }
  const width = Math.max(...Object.keys(facts).map((k) => k.length))
  out(Object.entries(facts).map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join(''))
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

// What read and watch print for `value`, just read from `obj`: text and bytes as the bytes
// stored (read() turns bytes that are not UTF-8 into U+FFFD), so that `read f | write g
// --raw` copies them exactly; other values as `show` gives them. (A string stored through
// the 'json' or 'v8' codec is stored as the codec's encoding: its bytes are not the string.)
function printable(obj, value, json) {
  if (typeof value === 'string' && !json) {
    const bytes = obj.readBuffer()
    return bytes.toString() === value ? bytes : value
  }
  return value instanceof Uint8Array ? value : show(value, json)
}

// A value as the CLI prints it: text as it is (unless `json`); a number as JavaScript
// writes it (NaN, Infinity and -0 included, which JSON cannot express); else JSON where that
// is exact, else as Node's inspector shows it (a Map or a Date through the v8 codec).
function show(value, json) {
  if (typeof value === 'string' && !json) return value
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value)
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype) {
    const text = JSON.stringify(value)
    if (text !== undefined) return text
  }
  return inspect(value, { depth: null })
}

function read([file], values) {
  const obj = SharedObject.open(file, { create: false, readOnly: true })
  let printed
  try {
    let version
    do {
      version = obj.version
      printed = printable(obj, obj.read(), values.json)
    } while (obj.version !== version)
  } finally {
    obj.close()
  }
  out(printed, '\n')
}

function write([file, arg], values) {
  const input = valueOf(arg, values, 'write')
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

async function watch([file]) {
  // Read-write when allowed: writers then wake us at once (a read-only handle polls).
  let obj
  try {
    obj = SharedObject.open(file, { create: false })
  } catch (err) {
    if (err.code !== 'EACCES' && err.code !== 'EROFS' && err.code !== 'EPERM') throw err
    obj = SharedObject.open(file, { create: false, readOnly: true })
  }
  const signal = interruptedBy()
  await new Promise((resolve, reject) => {
    const end = (err) => {
      obj.close()
      if (err) reject(err)
      else resolve()
    }
    // Watch first, then print the current value: a write in between is printed, once.
    let printed = -1
    const print = (value, version) => {
      if (version <= printed || obj.closed) return
      let chunk
      try {
        chunk = printable(obj, value)
      } catch (err) {
        unreadable(err)
        return
      }
      // A newer version came while this one was read: it is printed next.
      if (obj.version !== version) return
      printed = version
      try {
        out(chunk, '\n')
      } catch (err) {
        end(err instanceof OutputClosed ? undefined : err) // the reader went away: done
      }
    }
    // A value that cannot be read now is reported, and the next write is printed.
    const unreadable = (err) => process.stderr.write(`share-object: ${err.code}: ${err.message}\n`)
    obj.watch(print, { onError: unreadable })
    signal.addEventListener('abort', () => end(abortError()), { once: true })
    try {
      let version
      let value
      do {
        version = obj.version
        value = obj.read()
      } while (obj.version !== version)
      print(value, version)
    } catch (err) {
      if (err.code !== 'ERR_CORRUPT' && err.code !== 'ERR_CODEC_DECODE') return end(err)
      unreadable(err)
    }
  })
}

function abortError() {
  const err = new Error('stopped by SIGINT')
  err.name = 'AbortError'
  return err
}

async function send([file, arg], values) {
  const timeout = numberOption('timeout', values.timeout)
  const capacity = numberOption('capacity', values.capacity, true)
  const bytes = valueOf(arg, values, 'send')
  const ch = Channel.open(file, capacity === undefined ? undefined : { capacity })
  try {
    await ch.sendAsync(bytes, { timeout, signal: interruptedBy() })
  } finally {
    ch.close()
  }
}

async function recv([file], values) {
  const timeout = numberOption('timeout', values.timeout)
  const ch = Channel.open(file, { create: false })
  const signal = interruptedBy()
  try {
    await ch.claimConsumer()
    let closed = false
    // A message is taken only once it is written out: if the reader went away before any
    // of it was written, it stays queued (returning false leaves it in the channel).
    const print = (view) => {
      try {
        if (writeOut(view, '\n')) return true
      } catch (err) {
        if (!(err instanceof OutputClosed)) throw err
      }
      closed = true
      return false
    }
    for (;;) {
      const n = ch.consume(print, values.follow ? undefined : 1)
      if (closed) return // the reader went away: a quiet end, as `cat` has
      if (n > 0 && !values.follow) return
      if (n === 0) await ch.waitForMessage({ timeout, signal })
    }
  } finally {
    ch.close()
  }
}

function rm([file], values) {
  try {
    SharedObject.unlink(file)
    return
  } catch (err) {
    if (err.code !== 'ERR_NOT_A_SEGMENT') throw err
    // A directory is never removed; --force removes any other file, saying what it removes.
    if (!values.force || fs.lstatSync(file).isDirectory()) {
      if (!values.force) err.message += ' (rm --force removes it anyway)'
      throw err
    }
    const why = /not a share-object segment \((.*)\); the file was left unchanged$/.exec(err.message)
    process.stderr.write(`share-object: rm --force: removing ${path.resolve(file)}, which is not a share-object segment${why ? ` (${why[1]})` : ''}\n`)
  }
  fs.unlinkSync(file)
}

// One line for what util.parseArgs refused.
function parseProblem(err) {
  const name = /'(-[^' ]+)/.exec(err.message)?.[1]
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${name ?? ''}`.trim()
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /does not take an argument/.test(err.message) ? `option ${name} takes no value` : `option ${name} needs a value`
    default:
      return err.message.split('\n')[0]
  }
}

async function main(argv) {
  const [name, ...rest] = argv
  if (name === undefined) {
    process.stderr.write(USAGE + '\n')
    process.exitCode = 2
    return
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    out(USAGE + '\n')
    return
  }
  if (name === '--version' || name === '-v') {
    out(require('../package.json').version + '\n')
    return
  }
  const command = COMMANDS[name]
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)} (see "share-object --help")`)
  const help = `(see "share-object ${name} --help")`
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true })
  } catch (err) {
    throw new UsageError(`${name}: ${parseProblem(err)} ${help}`)
  }
  if (parsed.values.help) {
    out(`Usage: ${command.usage}\n`)
    return
  }
  const min = command.args.filter((a) => a.startsWith('<')).length
  const max = command.args.length
  const got = parsed.positionals.length
  if (got < min || got > max) {
    throw new UsageError(`${name}: expected ${min === max ? '' : `${min} to `}${max} argument${max > 1 ? 's' : ''} (${command.args.join(' ')}), got ${got} ${help}`)
  }
  await command.run(parsed.positionals, parsed.values)
}

main(process.argv.slice(2)).catch(fail)
