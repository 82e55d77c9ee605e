'use strict'
// A footprint snapshot of this process, after a full GC when --expose-gc is on:
// - rss, and its parts from /proc/self/status: rssAnon (heap, JS objects, native memory),
//   rssFile (file-backed pages: the segments, but also the node binary's code pages that
//   V8's compilers touch the first time a loop gets hot), rssShmem;
// - segmentRss: resident pages of the mappings of files under `dir` (the segments),
//   summed from /proc/self/smaps;
// - heapTotal (V8), mapsLines (/proc/self/maps lines, one per mapping), segmentMapsLines
//   (those mapping files under `dir`), fds (open file descriptors).

const fs = require('node:fs')

const KiB = 1024

function statusFields() {
  const fields = {}
  for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const match = /^(RssAnon|RssFile|RssShmem):\s+(\d+) kB/.exec(line)
    if (match) fields[match[1]] = Number(match[2]) * KiB
  }
  return fields
}

// Resident bytes of the mappings whose path contains `dir`.
function residentUnder(dir) {
  let inside = false
  let total = 0
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inside = line.includes(dir)
    else if (inside && line.startsWith('Rss:')) total += Number(/(\d+)/.exec(line)[1]) * KiB
  }
  return total
}

function snapshot(dir = null) {
  if (typeof global.gc === 'function') {
    global.gc()
    global.gc()
  }
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean)
  const memory = process.memoryUsage()
  const status = statusFields()
  return {
    rss: memory.rss,
    rssAnon: status.RssAnon ?? null,
    rssFile: status.RssFile ?? null,
    rssShmem: status.RssShmem ?? null,
    segmentRss: dir === null ? null : residentUnder(dir),
    heapTotal: memory.heapTotal,
    mapsLines: maps.length,
    segmentMapsLines: dir === null ? null : maps.filter((line) => line.includes(dir)).length,
    fds: fs.readdirSync('/proc/self/fd').length,
  }
}

module.exports = { snapshot }
