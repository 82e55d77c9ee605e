'use strict'
// A/B of the latest-value case between two builds of share-object in one process: this
// checkout and another (for example a checkout of the commit before value format 2, built
// with `npm ci`). Both are loaded side by side, their operations measured in the same
// interleaved rounds as case 1 (cases/latest-value.js), so the machine's drift hits both.
//
//   node benchmark/ab-format.js <other checkout> [--rounds N]
//
// Prints, for each operation on a 1 KiB string (write(); read() after every change, the
// native path, as [write; read] − [write]; read() unchanged, the cache hit), the median ns
// per call of each build and this build's ÷ the other's. Nothing is written to disk but
// the two segments, in a temp folder removed at the end.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { calibrate, timeBatch } = require('./harness/batch.js')
const { summarize } = require('./harness/stats.js')
const { duration } = require('./harness/format.js')

const VALUE_BYTES = 1024

function values() {
  const line = 'latest value {"id":12345,"status":"ok","items":[1,2,3]} '
  const base = line.repeat(Math.ceil(VALUE_BYTES / line.length)).slice(0, VALUE_BYTES - 1)
  return [`${base}A`, `${base}B`]
}

function operations(lib, file) {
  const a = lib.SharedObject.open(file, { size: 4 * VALUE_BYTES })
  const b = lib.SharedObject.open(file)
  const v = values()
  let sink = 0
  a.write(v[0])
  return {
    ops: {
      write: (n) => {
        for (let i = 0; i < n; i++) sink += a.write(v[i & 1])
      },
      writeRead: (n) => {
        for (let i = 0; i < n; i++) {
          sink += a.write(v[i & 1])
          sink += b.read().length
        }
      },
      readCached: (n) => {
        for (let i = 0; i < n; i++) sink += b.read().length
      },
    },
    prime: () => b.read(),
    close: () => {
      a.close()
      b.close()
      if (sink === -1) console.log(sink)
    },
  }
}

function main() {
  const args = process.argv.slice(2)
  const other = args[0]
  if (!other || other.startsWith('-')) throw new Error('usage: node benchmark/ab-format.js <other checkout> [--rounds N]')
  const rounds = args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : 60
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'share-object-ab-'))
  try {
    const builds = {
      this: operations(require(path.join(__dirname, '..')), path.join(dir, 'this')),
      other: operations(require(path.resolve(other)), path.join(dir, 'other')),
    }
    const ids = ['write', 'writeRead', 'readCached']
    const sizes = {}
    for (const b of Object.keys(builds)) for (const id of ids) sizes[`${b}.${id}`] = calibrate(builds[b].ops[id], 12)
    // Both builds' write and write+read share one batch size, so their difference is per read.
    for (const b of Object.keys(builds)) sizes[`${b}.write`] = sizes[`${b}.writeRead`] = Math.max(sizes['this.writeRead'], sizes['other.writeRead'])
    const keys = Object.keys(sizes)
    const samples = Object.fromEntries([...keys, 'this.readUncached', 'other.readUncached'].map((k) => [k, []]))
    for (let round = 0; round < rounds; round++) {
      const ns = {}
      for (const key of keys.map((_, i) => keys[(i + round) % keys.length])) {
        const [b, id] = key.split('.')
        if (id === 'readCached') builds[b].prime()
        ns[key] = timeBatch(builds[b].ops[id], sizes[key])
        samples[key].push(ns[key])
      }
      for (const b of Object.keys(builds)) samples[`${b}.readUncached`].push(ns[`${b}.writeRead`] - ns[`${b}.write`])
    }
    for (const b of Object.values(builds)) b.close()
    const m = (k) => summarize(samples[k]).median
    const rows = [
      ['write() of 1 KiB', 'write'],
      ['read() after every change', 'readUncached'],
      ['read(), value unchanged', 'readCached'],
    ]
    process.stdout.write(`| operation | this build | ${path.basename(path.resolve(other))} | this ÷ other |\n| --- | --- | --- | --- |\n`)
    for (const [label, id] of rows) {
      process.stdout.write(`| ${label} | ${duration(m(`this.${id}`))} | ${duration(m(`other.${id}`))} | ${(m(`this.${id}`) / m(`other.${id}`)).toFixed(3)} |\n`)
    }
    process.stdout.write(`\n${rounds} rounds, batches of ${Object.entries(sizes).map(([k, n]) => `${n} ${k}`).join(', ')} calls; Node ${process.version}, load average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}.\n`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main()
