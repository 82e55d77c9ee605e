'use strict'
// The project's targets (issue #5), checked against one run's sections. The targets are
// fixed here; the benchmark reports met / missed, it does not fail on a miss.

const MiB = 1024 * 1024
// Lines of /proc/self/maps that V8 and malloc add or drop on their own (see calls-maps).
const MAPS_JITTER = 4
const { ratio, bytes, count, percent } = require('./format.js')

const TARGETS = [
  {
    id: 'read',
    threshold: '≥ 20×',
    text: 'read() ≥ 20× fs.readFileSync',
    check(r) {
      const cached = rowOf(r, 'latest-value', 'read-cached').ratio
      const uncached = rowOf(r, 'latest-value', 'read-uncached').ratio
      return { met: cached >= 20 && uncached >= 20, measured: `after every change ${ratio(uncached)}; unchanged (cached) ${ratio(cached)}` }
    },
  },
  {
    id: 'write',
    threshold: '≥ 50×',
    text: 'write() ≥ 50× fs.writeFileSync',
    check(r) {
      const x = rowOf(r, 'latest-value', 'write').ratio
      return { met: x >= 50, measured: ratio(x) }
    },
  },
  {
    id: 'sync-round-trip',
    threshold: '≥ 50×',
    text: 'sync round trip (waitForChangeSync) ≥ 50× lower than the socket’s',
    check(r) {
      const x = rowOf(r, 'round-trip', 'so-sync').vsSocket
      return { met: x >= 50, measured: `socket ÷ waitForChangeSync = ${ratio(x)} (medians)` }
    },
  },
  {
    id: 'promise-round-trip',
    threshold: '≥ 1×',
    text: 'promise round trip (waitForChange) no slower than the socket’s',
    check(r) {
      const x = rowOf(r, 'round-trip', 'so-promise').vsSocket
      return { met: x >= 1, measured: `socket ÷ waitForChange = ${ratio(x)} (medians)` }
    },
  },
  {
    id: 'channel-sync-round-trip',
    threshold: '≥ 50×',
    text: 'Channel round trip (receiveSync) ≥ 50× lower than the socket’s',
    check(r) {
      const x = rowOf(r, 'round-trip', 'channel-sync').vsSocket
      return { met: x >= 50, measured: `socket ÷ Channel receiveSync = ${ratio(x)} (medians)` }
    },
  },
  // Streaming targets are met when any Channel form (single, batch, consume) reaches them; the
  // verdict names the form(s), and `byRow` gives each form's own verdict for its table row.
  {
    id: 'stream-64b',
    threshold: '≥ 10× socket',
    text: 'Channel streaming, 64 B messages: ≥ 10× the socket’s messages/s (any Channel form)',
    check: (r) => byForm(streamRows(r, 64), (row) => row.vsSocket, 10, (x) => ratio(x)),
  },
  {
    id: 'stream-64k-socket',
    threshold: '≥ 4× socket',
    text: 'Channel streaming, 64 KiB messages: ≥ 4× the socket’s bytes/s',
    check: (r) => byForm(streamRows(r, 64 * 1024), (row) => row.vsSocket, 4, (x) => ratio(x)),
  },
  {
    id: 'stream-64k-copy',
    threshold: 'within 2× of copy (≥ 50 %)',
    text: 'Channel streaming, 64 KiB messages: bytes/s within 2× of the in-process Buffer.copy’s',
    check: (r) => byForm(streamRows(r, 64 * 1024), (row) => row.vsCopy, 0.5, (x) => `${percent(x)} of the copy's MB/s`),
  },
  {
    id: 'calls-maps',
    threshold: 'flat',
    text: `1,000,000 calls: /proc/self/maps lines flat`,
    // "Flat" as read here: the segment's own mappings never change, and the total moves by
    // at most MAPS_JITTER lines (V8 heap pages and malloc arenas come and go by one or two
    // 256 KiB / 64 MiB mappings whatever the program does), i.e. no growth with the calls.
    // The exact numbers are always shown next to the verdict.
    check(r) {
      const { before, after, checkpoints } = section(r, 'footprint').calls
      const lines = checkpoints.map((c) => c.mapsLines)
      const own = checkpoints.map((c) => c.segmentMapsLines)
      const ownFlat = own.every((n) => n === before.segmentMapsLines)
      const drift = Math.max(...lines.map((n) => Math.abs(n - before.mapsLines)))
      return {
        met: ownFlat && drift <= MAPS_JITTER,
        measured: `total ${before.mapsLines} → ${after.mapsLines} (checkpoints ${Math.min(...lines)}–${Math.max(...lines)}, allowed jitter ±${MAPS_JITTER}); segment file ${before.segmentMapsLines} → ${after.segmentMapsLines}`,
      }
    },
  },
  {
    id: 'calls-rss',
    threshold: '< 10 MiB',
    text: '1,000,000 calls: RSS growth < 10 MiB',
    check(r) {
      const { before, after, calls } = section(r, 'footprint').calls
      const growth = after.rss - before.rss
      return { met: growth < 10 * MiB, measured: `${bytes(growth, true)} over ${count(calls)} calls` }
    },
  },
]

function section(results, id) {
  const found = results.sections.find((s) => s.id === id)
  if (!found) throw new Error(`no section ${id}`)
  return found
}

function rowOf(results, sectionId, rowId) {
  const found = section(results, sectionId).rows.find((r) => r.id === rowId)
  if (!found) throw new Error(`no row ${rowId} in ${sectionId}`)
  return found
}

const FORMS = { 'channel-single': 'single', 'channel-batch': 'batch', 'channel-consume': 'consume' }

// The Channel rows (single and batch form) of the streaming section at one message size.
function streamRows(results, size) {
  const group = section(results, 'channel-streaming').sizes.find((g) => g.size === size)
  if (!group) throw new Error(`no ${size}-byte streaming case`)
  const rows = group.rows.filter((row) => FORMS[row.id])
  if (rows.length !== Object.keys(FORMS).length) throw new Error(`no Channel rows for ${size}-byte messages`)
  return rows
}

// Met when any form reaches `threshold`; says which.
function byForm(rows, value, threshold, show) {
  const byRow = {}
  const reached = []
  for (const row of rows) {
    byRow[row.id] = value(row) >= threshold
    if (byRow[row.id]) reached.push(FORMS[row.id])
  }
  const values = rows.map((row) => `${FORMS[row.id]} ${show(value(row))}`).join(', ')
  const who = reached.length === 0 ? 'missed by every form' : `met by the ${reached.join(' and the ')} form${reached.length > 1 ? 's' : ''}`
  return { met: reached.length > 0, measured: `${values}: ${who}`, byRow }
}

/** [{ id, text, met, measured }] for every target (met: null if it could not be checked). */
function evaluate(results) {
  return TARGETS.map((t) => {
    try {
      return { id: t.id, text: t.text, threshold: t.threshold, ...t.check(results) }
    } catch (err) {
      return { id: t.id, text: t.text, threshold: t.threshold, met: null, measured: `not measured (${err.message})` }
    }
  })
}

module.exports = { evaluate, TARGETS }
