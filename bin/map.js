'use strict'

// `share-object map <get|set|delete|incr|keys|info> <path> …`: the map subcommands of the
// CLI (bin/share-object.js), each on a SharedMap.

const { SharedMap } = require('..')

const USAGE = `share-object map <command> <path> [args] [options]

Commands:
  get <path> <key> [--json]        print the key's value (strings as they are; other values,
                                   or any value with --json, as JSON)
  set <path> <key> <value> [--json] [--ttl ms]
                                   set the key (--json: parse <value> as JSON; - reads stdin)
  delete <path> <key>              delete the key; prints true if it had a value
  incr <path> <key> [by] [--ttl ms]
                                   add to a number (default 1); prints the result
  keys <path> [--prefix p]         print every key (one per line)
  info <path> [--json]             the map's options and counts

A missing map is created by set and incr only.`

const OPTIONS = {
  json: { type: 'boolean' },
  ttl: { type: 'string' },
  prefix: { type: 'string' },
}

const ARGS = { get: [2, 2], set: [3, 3], delete: [2, 2], incr: [2, 3], keys: [1, 1], info: [1, 1] }

function show(value, json) {
  if (!json && typeof value === 'string') return value
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return JSON.stringify({ type: 'Buffer', base64: Buffer.from(value).toString('base64') })
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v))
}

function ttlOf(values, UsageError) {
  if (values.ttl === undefined) return undefined
  const ms = Number(values.ttl)
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`--ttl must be a number of milliseconds, got ${JSON.stringify(values.ttl)}`)
  return { ttl: ms }
}

async function run(sub, positionals, values, { out, readStdin, UsageError }) {
  const [min, max] = ARGS[sub]
  if (positionals.length < min || positionals.length > max) {
    throw new UsageError(`map ${sub}: expected ${min === max ? min : `${min} to ${max}`} argument(s), got ${positionals.length} (see "share-object map --help")`)
  }
  const [file, key, arg] = positionals
  const writes = sub === 'set' || sub === 'incr' || sub === 'delete'
  const map = SharedMap.open(file, { create: sub === 'set' || sub === 'incr', readOnly: !writes })
  try {
    switch (sub) {
      case 'get': {
        const value = map.get(key)
        if (value === undefined) {
          const err = new Error(`${map.path}: no value for key ${JSON.stringify(key)}`)
          err.code = 'ERR_NOT_FOUND'
          throw err
        }
        out(`${show(value, values.json)}\n`)
        return
      }
      case 'set': {
        const text = arg === '-' ? readStdin().toString('utf8') : arg
        let value = text
        if (values.json) {
          try {
            value = JSON.parse(text)
          } catch (err) {
            throw new UsageError(`map set --json: the value is not JSON (${err.message})`)
          }
        }
        map.set(key, value, ttlOf(values, UsageError))
        return
      }
      case 'delete':
        out(`${map.delete(key)}\n`)
        return
      case 'incr': {
        const by = arg === undefined ? 1 : Number(arg)
        if (!Number.isFinite(by)) throw new UsageError(`map incr: <by> must be a number, got ${JSON.stringify(arg)}`)
        out(`${map.incr(key, by, ttlOf(values, UsageError))}\n`)
        return
      }
      case 'keys':
        for (const k of map.keys()) if (values.prefix === undefined || k.startsWith(values.prefix)) out(`${k}\n`)
        return
      case 'info': {
        const info = map.info()
        if (values.json) {
          out(`${JSON.stringify(info)}\n`)
          return
        }
        const width = Math.max(...Object.keys(info).map((k) => k.length))
        for (const [k, v] of Object.entries(info)) out(`${k.padEnd(width)}  ${v}\n`)
        return
      }
    }
  } finally {
    map.close()
  }
}

module.exports = { USAGE, OPTIONS, SUBCOMMANDS: Object.keys(ARGS), run }
