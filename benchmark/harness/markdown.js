'use strict'
// The Markdown report printed on stdout: machine, one table per case, the targets.
// Pure rendering of the results object (the same one written to results.json).

const { duration, bytes, ratio, count, rate, megabytes, percent } = require('./format.js')
const { machineLine } = require('./machine.js')
const { targetsOf } = require('./targets.js')

const SECTION_RENDERERS = {
  'latest-value': latestValue,
  'large-value': largeValue,
  'object-values': objectValues,
  'round-trip': roundTrip,
  'channel-streaming': channelStreaming,
  footprint,
  keyv,
  'shared-map': sharedMap,
}

function render(results) {
  const out = [...header(results)]
  for (const section of results.sections) out.push('', ...SECTION_RENDERERS[section.id](section, results))
  out.push('', ...targetsTable(results))
  return out.join('\n') + '\n'
}

function header(results) {
  const m = results.machine
  const lines = [
    '## share-object benchmark',
    '',
    `**Machine:** ${machineLine(m)} · **date:** ${m.date} · **load average at start:** ${m.loadAverage.join(' ')} · **cores busy with other work:** ${m.busyCoresAtStart ?? 'n/a'} of ${m.cores} at start, ${m.busyCoresAtEnd ?? 'n/a'} at the end`,
    '',
    'Compare the **ratios**: absolute times drift on a shared machine, ratios measured in one run much less. Times are medians; p99 is the 99th percentile.',
  ]
  if (results.quick) lines.push('', '> **Quick mode (smoke test):** every case ran briefly; the numbers are not meaningful.')
  const spinners = maxSpinners(results)
  const busy = Math.max(m.busyCoresAtStart ?? 0, m.busyCoresAtEnd ?? 0)
  if (spinners && m.cores - busy < spinners - 0.25) {
    lines.push('', `> **Warning:** other processes kept up to ${busy} of ${m.cores} cores busy (sampled before and after the run); the spinning case needs ${spinners} free cores, so its numbers reflect that contention, not the library at its best.`)
  }
  return lines
}

// The most cores a case's spinning waits need at once: the round trip's spinners, or the
// SharedMap case's polling reader (one).
function maxSpinners(results) {
  const trips = results.sections.find((s) => s.id === 'round-trip')
  const map = results.sections.find((s) => s.id === 'shared-map')
  const tripSpinners = trips ? Math.max(0, ...trips.rows.map((r) => r.spinners || 0)) : 0
  const mapSpinners = map && map.visibility.some((r) => r.spins && !r.missing) ? 1 : 0
  return Math.max(tripSpinners, mapSpinners)
}

// The target and result cells of a row: every target that applies to it (for a streaming
// row, its own verdict within the target), or '—'.
function targetCells(results, sectionId, row, size) {
  const targets = targetsOf(results.targets, sectionId, row, size)
  if (targets.length === 0) return ['—', '']
  const threshold = targets.map((t) => t.threshold).join('; ')
  const result = targets.map((t) => verdict(t.byRow ? t.byRow[row.id] ?? null : t.met, results.quick)).join('; ')
  return [threshold, result]
}

function verdict(met, quick) {
  const word = met === null ? 'n/a' : met ? 'met' : '**missed**'
  return quick ? `${word} (quick)` : word
}

function latestValue(section, results) {
  const lines = [
    `### 1. Latest value, ${section.valueBytes / 1024} KiB string (one process)`,
    '',
    '| operation | share-object median (p99) | file bridge median (p99) | ratio (fs ÷ share-object) | target | result |',
    '| --- | --- | --- | --- | --- | --- |',
  ]
  for (const row of section.rows) {
    const so = `${duration(row.shareObject.median)} (${duration(row.shareObject.p99)})`
    const alt = `${row.alternative.label} ${duration(row.alternative.ns.median)} (${duration(row.alternative.ns.p99)})`
    lines.push(`| ${row.label} | ${so} | ${alt} | ${ratio(row.ratio)} | ${targetCells(results, section.id, row).join(' | ')} |`)
  }
  const rounds = section.rows[0].shareObject.n
  lines.push(
    '',
    `ns per call from batches (${rounds} rounds, each a batch of ${section.rows.map((r) => `${count(r.batch)} ${r.id}`).join(', ')} calls); p99 is over the rounds' batch means. ` +
      '"After every change" is [write(); read()] − [write()] on two handles of one segment: the native copy-and-decode path; "unchanged" is the cache hit (one atomic load). ' +
      'fs.readFileSync has no cache, so it is the comparison for both reads; fs.writeFileSync rewrites the file without fsync (readers can see it half-written).',
  )
  return lines
}

function largeValue(section, results) {
  const { contended: c, uncontended: u } = section.reads
  const lines = [
    `### 1b. A ${section.valueBytes / 1024 / 1024} MiB value under a writer rewriting it in a loop (writer and reader processes)`,
    '',
    '| measure | under the writer | uncontended | ratio | target | result |',
    '| --- | --- | --- | --- | --- | --- |',
  ]
  const [readRow, rateRow] = section.rows
  lines.push(`| readBuffer() p99 (median) | ${duration(c.p99)} (${duration(c.median)}), ${count(c.n)} reads | ${duration(u.p99)} (${duration(u.median)}), ${count(u.n)} reads | ${ratio(readRow.ratio)} | ${targetCells(results, section.id, readRow).join(' | ')} |`)
  const r = section.rates
  lines.push(`| writer commits/s | ${count(Math.round(r.withReader))} with a reader | ${count(Math.round(r.alone))} alone | ${ratio(rateRow.ratio)} | ${targetCells(results, section.id, rateRow).join(' | ')} |`)
  lines.push(`| writer commits/s, the reader on another segment | ${count(Math.round(r.withReader))} with a reader | ${count(Math.round(r.besideReader))} beside a reader of another segment | ${ratio(r.besideReader / r.withReader)} | — | |`)
  lines.push(
    '',
    `${section.rounds} rounds of four ${section.phaseMs} ms phases: the writer alone on segment A (the reader sleeps); the writer on A with the reader reading A in a loop; the writer on segment B with the reader reading A (uncontended, the machine as busy); the writer on A with the reader reading B (as busy, no reader of A: the last row tells how much of the writer's drop is the cores and memory being shared). ` +
      'Every read is timed on its own (readBuffer() copies the value into a new Buffer of its own). A reader of a value this large pins the slot it copies (a kernel read lock), and the writer fills another: a read takes one copy whatever the writer does.',
  )
  return lines
}

function objectValues(section, results) {
  const lines = [
    `### 1c. A ${section.valueBytes}-byte object as the value (one process)`,
    '',
    '| operation | share-object median (p99) | JSON + file median (p99) | ratio | target | result |',
    '| --- | --- | --- | --- | --- | --- |',
  ]
  for (const row of section.rows) {
    const so = `${duration(row.shareObject.median)} (${duration(row.shareObject.p99)})`
    const alt = `${row.alternative.label} ${duration(row.alternative.ns.median)} (${duration(row.alternative.ns.p99)})`
    lines.push(`| ${row.label} | ${so} | ${alt} | ${ratio(row.ratio)} | ${targetCells(results, section.id, row).join(' | ')} |`)
  }
  lines.push(
    '',
    `The default codec stores a plain object as JSON with a type tag; read() parses it afresh every time (an object handed out from a cache could be changed by its receiver), so even an unchanged read costs a JSON.parse. ${section.rounds} rounds, as case 1.`,
  )
  return lines
}

function roundTrip(section, results) {
  const lines = [
    '### 2. Cross-process round trip, 8-byte message (parent ↔ spawned child)',
    '',
    '| transport | median | p99 | mean | socket ÷ this (median) | socket ÷ this (p99) | target | result |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  const notes = []
  for (const row of section.rows) {
    let label = row.label
    if (row.note) {
      notes.push(row.note + (row.spinners > 0 ? ` (this machine has ${results.machine.cores} cores)` : ''))
      label += ` [${notes.length}]`
    }
    const [threshold, result] = row.baseline ? ['baseline', ''] : targetCells(results, section.id, row)
    const n = row.ns
    lines.push(`| ${label} | ${duration(n.median)} | ${duration(n.p99)} | ${duration(n.mean)} | ${ratio(row.vsSocket)} | ${ratio(row.vsSocketP99)} | ${threshold} | ${result} |`)
  }
  lines.push('')
  notes.forEach((note, i) => lines.push(`[${i + 1}] ${note}.  `))
  lines.push(
    `Each round trip timed on its own (hrtime, ~40 ns included); ${section.rows.map((r) => `${count(r.ns.n)} ${r.id}`).join(', ')} round trips. ` +
      'share-object uses two segments, one per direction; each trip is write → peer wakes, read(), write() → parent wakes, read(). ' +
      'The Channel cases use two channels, one per direction: send() → the peer\'s receiveSync() / recv() → send() of the same Buffer back → the parent\'s receiveSync() / recv() as a latin1 string. ' +
      'A ratio above 1 means fewer µs per round trip than the socket.',
  )
  return lines
}

function channelStreaming(section, results) {
  const lines = [
    '### 3. Channel streaming, one way (spawned producer → parent)',
    '',
    '| message | transport | messages/s | MB/s | this ÷ socket | share of the copy\'s MB/s | runs: slowest–fastest (messages/s) | target | result |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for (const group of section.sizes) {
    for (const row of group.rows) {
      const [threshold, result] = row.baseline ? ['baseline', ''] : targetCells(results, section.id, row, group.size)
      const vsSocket = row.baseline ? 'baseline' : ratio(row.vsSocket)
      const vsCopy = row.reference ? 'ceiling (100 %)' : percent(row.vsCopy)
      lines.push(`| ${bytes(group.size)} | ${row.label} | ${rate(row.messagesPerSec)} | ${megabytes(row.bytesPerSec)} | ${vsSocket} | ${vsCopy} | ${rate(row.messagesPerSecMin)}–${rate(row.messagesPerSecMax)} | ${threshold} | ${result} |`)
    }
  }
  const perRun = section.sizes
    .map((g) => `${bytes(g.size)}: ${g.rows.map((r) => `${r.id} ${count(r.messagesPerRun)}`).join(', ')}`)
    .join('; ')
  const channels = section.sizes.map((g) => `${bytes(g.size)}: capacity ${bytes(g.capacity)} (maxMessage ${bytes(g.maxMessage)}), sendBatch() of ${count(g.batch)}`).join('; ')
  lines.push(
    '',
    'One way, from a spawned producer to the parent (the consumer), each message a Buffer on arrival, checked for its length, its sequence number (first 4 bytes) and the low byte of that number (last byte): a lost, repeated or torn message fails the run. ' +
      'Time runs from the producer\'s first send (its hrtime: CLOCK_MONOTONIC, shared by the processes) to the arrival of the last message in the parent. ' +
      `Every form sends a fixed number of messages per run and runs ${section.rounds === 1 ? 'once' : `${section.rounds} times, the forms interleaved`}; a row is its median run. MB = 10^6 bytes of message payload (frame headers not counted); for one message size the ratio of messages/s and of bytes/s are the same.`,
    '',
    'Socket: one socket.write() per length-prefixed frame, \'drain\' honoured (the baseline); "writes coalesced" packs ~256 KiB of frames into each write(). The parent parses the frames out of the \'data\' chunks into subarrays. ' +
      'Channel single: send() per message, sendAsync() of that message when the channel is full; the parent calls receiveSync() per message (its own copy). ' +
      'Channel batch: sendBatch() of many, sendAsync() of the first unsent one when it took only part; the parent calls receiveBatch() (views of one copy per batch; over 4 KiB a Buffer each), receiveSync() of one message when none waits. ' +
      'Channel consume: the producer as single; the parent calls consume() (views of the messages in the ring, checked in place, no copy), receiveSync() of one message when none waits. ' +
      'Copy: Buffer.copy of each message in this process into a ring-sized buffer, wrapping: the bandwidth ceiling (one copy, no second process). ' +
      'When the consumer catches up with the producer, receiveSync() spins ~20 µs before it sleeps: another process on the cores slows that down.',
    '',
    `Channels — ${channels}. Messages per run — ${perRun}.`,
  )
  if (results.quick) lines.push('', `_Quick mode: a fiftieth of the messages, one run each._`)
  return lines
}

function footprint(section, results) {
  return [
    '### 4. Footprint (fresh child processes, full GC before every snapshot)',
    '',
    '| measure | before | after | change | target | result |',
    '| --- | --- | --- | --- | --- | --- |',
    ...segmentRows(section.segments),
    ...callRows(section.calls, results),
    ...churnRows(section.churn),
    '',
    ...footprintNotes(section),
  ]
}

const change = (a, b) => count(b - a, true)

function segmentRows(s) {
  const label = `${s.count} open segments`
  const rss = s.after.rss - s.before.rss
  const fds = s.after.fds - s.before.fds
  return [
    `| ${label}: RSS | ${bytes(s.before.rss)} | ${bytes(s.after.rss)} | ${bytes(rss, true)} (${rssParts(s.before, s.after)}) | — | |`,
    `| ${label}: RSS of the segment mappings | ${bytes(s.before.segmentRss)} | ${bytes(s.after.segmentRss)} | ${bytes(s.after.segmentRss - s.before.segmentRss, true)} (${bytes((s.after.segmentRss - s.before.segmentRss) / s.count)} each) | — | |`,
    `| ${label}: /proc/self/maps lines | ${s.before.mapsLines} | ${s.after.mapsLines} | ${change(s.before.mapsLines, s.after.mapsLines)} (${s.after.segmentMapsLines - s.before.segmentMapsLines} of segment files) | — | |`,
    `| ${label}: open fds | ${s.before.fds} | ${s.after.fds} | ${count(fds, true)} (${sig2(fds / s.count)} per segment) | — | |`,
  ]
}

// "anon +1 MiB, segments +400 KiB, other files +3 MiB": where an RSS change comes from.
function rssParts(a, b) {
  if (a.rssAnon === null || a.segmentRss === null) return 'no breakdown'
  const otherFiles = b.rssFile - b.segmentRss - (a.rssFile - a.segmentRss)
  return `anonymous ${bytes(b.rssAnon - a.rssAnon, true)}, segment files ${bytes(b.segmentRss - a.segmentRss, true)}, other file pages ${bytes(otherFiles, true)}`
}

function callRows(c, results) {
  const label = `${count(c.calls)} calls (write/read alternating)`
  const [rssT, rssR] = targetOf(results, 'calls-rss')
  const [mapsT, mapsR] = targetOf(results, 'calls-maps')
  return [
    `| ${label}: RSS | ${bytes(c.before.rss)} | ${bytes(c.after.rss)} | ${bytes(c.after.rss - c.before.rss, true)} (${rssParts(c.before, c.after)}) | ${rssT} | ${rssR} |`,
    `| ${label}: /proc/self/maps lines | ${c.before.mapsLines} | ${c.after.mapsLines} | ${change(c.before.mapsLines, c.after.mapsLines)} | ${mapsT} | ${mapsR} |`,
    `| ${label}: maps lines of the segment file | ${c.before.segmentMapsLines} | ${c.after.segmentMapsLines} | ${change(c.before.segmentMapsLines, c.after.segmentMapsLines)} | — | |`,
    `| ${label}: V8 heap (heapTotal) | ${bytes(c.before.heapTotal)} | ${bytes(c.after.heapTotal)} | ${bytes(c.after.heapTotal - c.before.heapTotal, true)} | — | |`,
    `| ${label}: open fds | ${c.before.fds} | ${c.after.fds} | ${change(c.before.fds, c.after.fds)} | — | |`,
  ]
}

function churnRows(ch) {
  const label = `${count(ch.cycles)} × open() + read() + close() in one synchronous loop`
  return [
    `| ${label}: maps lines of segment files | ${ch.before.segmentMapsLines} | ${ch.sameTick.segmentMapsLines} | ${change(ch.before.segmentMapsLines, ch.sameTick.segmentMapsLines)} (${ch.settled.segmentMapsLines} once the event loop turned) | — | |`,
    `| ${label}: RSS | ${bytes(ch.before.rss)} | ${bytes(ch.sameTick.rss)} | ${bytes(ch.sameTick.rss - ch.before.rss, true)} (${rssParts(ch.before, ch.sameTick)}; ${bytes(ch.settled.rss - ch.before.rss, true)} in all once the event loop turned) | — | |`,
  ]
}

function footprintNotes({ segments, calls, churn, quickCalls }) {
  const notes = [
    '"Other file pages" are mostly the node binary\'s own code, paged in when V8\'s optimising compilers first run (a loop getting hot), not share-object.',
    '',
    `The calls run in a child with a fixed-size V8 young generation (--min-semi-space-size=8 --max-semi-space-size=8): by default V8 resizes it with the allocation rate, adding or dropping 256 KiB mappings (~2 MiB RSS) that a maps-line count cannot tell from a leak. "Before" is after a warm-up of ${count(calls.warmupCalls)} calls of the same kind. ` +
      `At the very start: RSS ${bytes(calls.start.rss)}, ${calls.start.mapsLines} maps lines. ` +
      `At each tenth of the measured calls: RSS ${calls.checkpoints.map((c) => bytes(c.rss)).join(', ')}; maps lines ${calls.checkpoints.map((c) => c.mapsLines).join(', ')}.`,
    '',
    `After closing the ${segments.count} segments (same tick): RSS ${bytes(segments.closed.rss)}, ${segments.closed.mapsLines} maps lines (${segments.closed.segmentMapsLines} of segment files), ${segments.closed.fds} fds. ` +
      `Open/close churn: ${duration(churn.nsPerCycle)} per cycle; "after" is right after the loop, before the event loop turned.`,
  ]
  if (quickCalls) notes.push('', `_Quick mode: ${count(calls.calls)} calls instead of 1,000,000._`)
  return notes
}

function sharedMap(section, results) {
  const rows = section.throughput
  const map = { string: rows.find((r) => r.id === 'map-string'), object: rows.find((r) => r.id === 'map-object') }
  const lines = [
    '### 6. SharedMap: 10,000 keys of ~100-byte JSON documents, one writer process, one reader process',
    '',
    '**Throughput** (gets/s in the reader, sets/s in the writer; each the median round, with the slowest and fastest round)',
    '',
    '| store | values | get with | gets/s (rounds) | SharedMap ÷ this | set with | sets/s (rounds) | SharedMap ÷ this | target | result |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  const notes = []
  for (const row of rows) {
    if (row.missing) {
      notes.push(`${row.label} (${row.values}): not measured: ${row.missing}`)
      lines.push(`| ${row.label} | ${row.values} | — | not measured [${notes.length}] | | — | | | | |`)
      continue
    }
    const [threshold, result] = targetCells(results, section.id, row)
    row.sets.forEach((m, i) => {
      const first = i === 0
      const getCells = first ? [row.gets.label, opsCell(row.gets), row.kind === 'so' ? '—' : ratio(row.mapGetsRatio)] : ['', '', '']
      const setCells = [m.label, opsCell(m), row.kind === 'so' ? '—' : ratio(m.mapRatio)]
      const head = first ? [row.label, row.values] : ['', '']
      lines.push(`| ${[...head, ...getCells, ...setCells, first ? threshold : '', first ? result : ''].join(' | ')} |`)
    })
  }
  lines.push('')
  notes.forEach((note, i) => lines.push(`[${i + 1}] ${note}.  `))
  const c = section.config
  lines.push(
    `Each store is set (writer) and then read (reader) in chunks of 1,000 keys in a scattered order (lmdb's put(): 10,000 per chunk, one write transaction) for ${c.budgetMs} ms per round, ${c.rounds} round${c.rounds > 1 ? 's' : ''} after a warm-up, the stores interleaved. ` +
      'Every value read is checked; every pass of sets changes every value. "SharedMap ÷ this" compares with SharedMap\'s row of the same kind of value (strings or objects). ' +
      `SharedMap: ${map.string ? `${rate(map.string.gets.opsPerSec)} gets/s and ${rate(map.string.sets[0].opsPerSec)} sets/s with strings` : 'n/a'}. ` +
      "lmdb is opened with noSync and useWritemap; lmdb-js reads a whole batch from one read snapshot (renewed each event turn), SharedMap's get() always returns the latest value.",
    '',
    '**How soon a set is seen by the other process** (writer clock before the set → reader clock when it sees the new value)',
    '',
    '| writer → reader | median | p99 | mean | lmdb ÷ this (median) | writes seen (missed) | target | result |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  )
  const spinNotes = []
  for (const row of section.visibility) {
    if (row.missing) {
      lines.push(`| ${row.label} | not measured: ${row.missing} | | | | | | |`)
      continue
    }
    const [threshold, result] = targetCells(results, section.id, row)
    const label = row.spins ? `${row.label} [s]` : row.label
    if (row.spins) spinNotes.push(row.id)
    const n = row.ns
    lines.push(`| ${label} | ${duration(n.median)} | ${duration(n.p99)} | ${duration(n.mean)} | ${ratio(row.lmdbRatio)} | ${count(n.n)} (${count(row.missed)}) | ${threshold} | ${result} |`)
  }
  lines.push(
    '',
    `[s] the reader spins (polls in a loop) and needs a core of its own (this machine has ${results.machine.cores} cores; the writer sleeps between writes). ` +
      `${c.writes} writes per run, ${c.visibilityRounds} run${c.visibilityRounds > 1 ? 's' : ''} per row; the writer waits ${c.gapUs}–${c.gapUs * 1.5} µs and one event-loop turn after each write. ` +
      'A write is "missed" when the next one replaced it before the reader saw it (the reader was off its core that long). lmdb\'s reader calls resetReadTxn() before every getString() (without it, a loop never sees another process\'s commit) and gives the event loop a turn once a millisecond (each resetReadTxn() leaves a timer behind that only a turn clears).',
    '',
    ...largeMapTable(section, results),
  )
  if (results.quick) lines.push('', `_Quick mode: ${count(c.entries)} entries instead of 1,000,000, one short round._`)
  return lines
}

function opsCell(m) {
  return `${rate(m.opsPerSec)} (${rate(m.slowest)}–${rate(m.fastest)})`
}

function largeMapTable(section, results) {
  const l = section.large
  const entries = count(l.entries)
  const cells = (id) => targetCells(results, section.id, { id }).join(' | ')
  const rssParts = `map file pages ${bytes(l.read.after.segmentRss - l.read.before.segmentRss)}, anonymous ${bytes(l.read.after.rssAnon - l.read.before.rssAnon, true)}`
  return [
    `**A map of ${entries} entries** (\`user:<i>\` → a 100-byte string; keys + values = ${bytes(l.rawBytes)}), each step in a fresh process`,
    '',
    '| measure | value | ÷ keys + values | target | result |',
    '| --- | --- | --- | --- | --- |',
    `| file on disk: allocated blocks (stat blocks × 512) | ${bytes(l.file.allocated)} (size ${bytes(l.file.size)}) | ${ratio(l.file.allocated / l.rawBytes)} | ${cells('disk')} |`,
    `| RSS growth of a process that opens it and gets every entry | ${bytes(l.rssGrowth, true)} (${rssParts}) | ${ratio(l.rssGrowth / l.rawBytes)} | ${cells('rss')} |`,
    `| SharedMap.open(): ${entries}-entry map, median (p99) | ${duration(l.open.full.median)} (${duration(l.open.full.p99)}) | — | ${cells('attach')} |`,
    `| SharedMap.open(): empty map, median (p99) | ${duration(l.open.empty.median)} (${duration(l.open.empty.p99)}) | — | — | |`,
    '',
    `Built by one process in ${duration(l.buildNsPerSet * l.entries)} (${duration(l.buildNsPerSet)} per set, growing the file from empty); its info() counts ${bytes(l.info.bytes)} of live entries (keys, values and entry headers) in a heap of ${bytes(l.info.heapBytes)}, ${l.info.shards} shards. ` +
      `An empty map's file: ${bytes(l.emptyFile.allocated)}. RSS is measured after a full GC, before the open and after the last get. ` +
      `open() is timed ${l.open.times} times per map, alternating, each handle closed before the next open.`,
  ]
}

function targetOf(results, id) {
  const t = results.targets.find((x) => x.id === id)
  return [t.threshold, verdict(t.met, results.quick)]
}

function sig2(x) {
  return String(Number(x.toFixed(2)))
}

function keyv(section, results) {
  const lines = [
    '### 5. Keyv stores (through Keyv\'s API, its serialisation included)',
    '',
    '| store | gets/s | sets/s | share-object ÷ this (gets) | share-object ÷ this (sets) | rounds: slowest–fastest gets/s; sets/s |',
    '| --- | --- | --- | --- | --- | --- |',
  ]
  for (const r of section.rows) {
    const vs = r.id === 'share-object' ? ['—', '—'] : [ratio(r.getVsShareObject), ratio(r.setVsShareObject)]
    lines.push(`| ${r.label} | ${rate(r.get.median)} | ${rate(r.set.median)} | ${vs.join(' | ')} | ${rate(r.get.min)}–${rate(r.get.max)}; ${rate(r.set.min)}–${rate(r.set.max)} |`)
  }
  lines.push(
    '',
    '| time until a set is visible in another process | median | p99 | this ÷ share-object polling (median) |',
    '| --- | --- | --- | --- |',
    "| Keyv's default Map | n/a: another process never sees it | | |",
  )
  for (const v of section.visible) {
    const vs = v.id === 'share-object' ? '—' : ratio(v.vsShareObject)
    lines.push(`| ${v.label} | ${duration(v.ns.median)} | ${duration(v.ns.p99)} | ${vs} |`)
  }
  lines.push(
    '',
    `Gets and sets: \`await keyv.get(key)\` / \`await keyv.set(key, value)\` one after another over ${count(section.keys)} keys, a value Keyv serialises to ${section.valueBytes} bytes; ` +
      `every store once per round, ${section.rounds} rounds interleaved, batches of ${section.rows.map((r) => `${r.id} ${count(r.get.batch)}/${count(r.set.batch)}`).join(', ')} (gets/sets); a row is the median round. ` +
      'sqlite syncs every commit to disk (its default), share-object never touches the disk (shared memory): sqlite\'s sets measure the disk as much as the store.',
    '',
    'Visibility: a spawned peer reads the key through Keyv in a loop (Keyv has no change notification); the parent reads its clock, then sets a new value; the peer reads its clock when a get first returns it (process.hrtime: CLOCK_MONOTONIC, shared by the processes). ' +
      `The time includes the set. "waits" has the peer block on the store's SharedMap (store.map.waitForChange()) instead of polling. ${section.visible.map((v) => `${count(v.ns.n)} ${v.id}`).join(', ')} sets.`,
  )
  if (results.quick) lines.push('', '_Quick mode: 50 keys, two rounds of short batches, five sets per visibility row._')
  return lines
}

function targetsTable(results) {
  const lines = ['### Targets', '', '| target | measured | result |', '| --- | --- | --- |']
  for (const t of results.targets) lines.push(`| ${t.text} | ${t.measured} | ${verdict(t.met, results.quick)} |`)
  return lines
}

module.exports = { render }
