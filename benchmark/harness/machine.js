'use strict'
// The machine the numbers come from, for results.json, the table and the chart: CPU model
// (/proc/cpuinfo), logical cores, memory, kernel, Node and V8 versions, the file system
// that holds os.tmpdir() (the fs comparison depends on it), load average and the date.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

function cpuModel() {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))
    if (match) return match[1].trim()
  } catch {}
  return os.cpus()[0]?.model || 'unknown CPU'
}

// The mount (and its type) that holds `dir`: the longest matching mount point.
function fileSystemOf(dir) {
  try {
    let best = null
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mountPoint, type] = line.split(' ')
      if (!mountPoint) continue
      const inside = dir === mountPoint || dir.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`)
      if (inside && (!best || mountPoint.length > best.mountPoint.length)) best = { mountPoint, type }
    }
    return best || { mountPoint: null, type: 'unknown' }
  } catch {
    return { mountPoint: null, type: 'unknown' }
  }
}

function packageVersion() {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

// Total and idle jiffies summed over all CPUs (/proc/stat's first line).
function cpuTimes() {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const idle = fields[3] + (fields[4] || 0) // idle + iowait
  return { total: fields.reduce((a, b) => a + b, 0), idle }
}

/**
 * How many cores other processes keep busy, sampled over `ms` while the benchmark is idle
 * (before the first case and after the last). Spinning cases need a free core per spinner; when this is high
 * their numbers say more about the machine than about the library.
 */
async function busyCores(ms = 500) {
  try {
    const a = cpuTimes()
    await new Promise((resolve) => setTimeout(resolve, ms))
    const b = cpuTimes()
    const total = b.total - a.total
    if (total <= 0) return null
    const busy = (1 - (b.idle - a.idle) / total) * os.cpus().length
    return Number(Math.max(0, busy).toFixed(2))
  } catch {
    return null
  }
}

/** Everything describing the machine and software of this run. */
async function machineInfo() {
  const tmp = fs.realpathSync(os.tmpdir())
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    shareObject: packageVersion(),
    tmpdir: { path: tmp, ...fileSystemOf(tmp) },
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
    busyCoresAtStart: await busyCores(),
    date: new Date().toISOString(),
  }
}

/** One line: "AMD EPYC, 2 cores, Linux 6.1 x64, Node v20.20.2, tmpdir on ext4". */
function machineLine(m) {
  return `${m.cpu}, ${m.cores} cores, ${m.platform}, Node ${m.node}, tmpdir on ${m.tmpdir.type}`
}

module.exports = { machineInfo, machineLine, busyCores }
