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
// per call of each build and this build's ÷ the other's, twice: by the clock, and by the
// CPU time the process used (process.cpuUsage(), which leaves out the time other
// processes had the core: on a busy machine the steadier of the two). Nothing is written
// to disk but the two segments, in a temp folder removed at the end.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { calibrate } = require('./harness/batch.js')
const { summarize } = require('./harness/stats.js')
const { duration } = require('./harness/format.js')

// The same values as case 1.
const { values, VALUE_BYTES } = require('./cases/latest-value.js')

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

// Wall-clock and CPU nanoseconds per call of `batch(n)`.
function timeBoth(batch, n) {
  const c0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  batch(n)
  const wall = Number(process.hrtime.bigint() - t0) / n
  const c = process.cpuUsage(c0)
  return { wall, cpu: ((c.user + c.system) * 1000) / n }
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
    const all = [...keys, 'this.readUncached', 'other.readUncached']
    const samples = { wall: Object.fromEntries(all.map((k) => [k, []])), cpu: Object.fromEntries(all.map((k) => [k, []])) }
    for (let round = 0; round < rounds; round++) {
      const ns = {}
      for (const key of keys.map((_, i) => keys[(i + round) % keys.length])) {
        const [b, id] = key.split('.')
        if (id === 'readCached') builds[b].prime()
        ns[key] = timeBoth(builds[b].ops[id], sizes[key])
        samples.wall[key].push(ns[key].wall)
        samples.cpu[key].push(ns[key].cpu)
      }
      for (const b of Object.keys(builds)) {
        samples.wall[`${b}.readUncached`].push(ns[`${b}.writeRead`].wall - ns[`${b}.write`].wall)
        samples.cpu[`${b}.readUncached`].push(ns[`${b}.writeRead`].cpu - ns[`${b}.write`].cpu)
      }
    }
    for (const b of Object.values(builds)) b.close()
    const rows = [
      ['write() of 1 KiB', 'write'],
      ['read() after every change', 'readUncached'],
      ['read(), value unchanged', 'readCached'],
    ]
    const name = path.basename(path.resolve(other))
    process.stdout.write(`| operation | this build: clock (CPU) | ${name}: clock (CPU) | this ÷ other: clock (CPU) |\n| --- | --- | --- | --- |\n`)
    for (const [label, id] of rows) {
      const m = (kind, b) => summarize(samples[kind][`${b}.${id}`]).median
      const cell = (b) => `${duration(m('wall', b))} (${duration(m('cpu', b))})`
      const r = (kind) => (m(kind, 'this') / m(kind, 'other')).toFixed(3)
      process.stdout.write(`| ${label} | ${cell('this')} | ${cell('other')} | ${r('wall')} (${r('cpu')}) |\n`)
    }
    process.stdout.write(`\n${rounds} rounds, batches of ${Object.entries(sizes).map(([k, n]) => `${n} ${k}`).join(', ')} calls; Node ${process.version}, load average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}.\n`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main()
