'use strict'
// results.svg: a hand-written horizontal bar chart of the ratios, log scale, for a README
// to embed. Bars start at 1× (parity) and go right when share-object (or a transport) is
// faster than the comparison, left when slower. Red ticks mark the targets. The machine,
// Node version and date are written into the chart.

const { ratio, bytes } = require('./format.js')
const { targetsOf } = require('./targets.js')
const { machineLine } = require('./machine.js')

const W = 960
const LABEL_X = 16
const PLOT_X0 = 330
const PLOT_X1 = W - 170
const ROW_H = 24
const BAR_H = 14
const COLORS = { so: '#2563eb', alt: '#9ca3af', ref: '#d1d5db', target: '#dc2626', grid: '#e5e7eb', axis: '#374151', text: '#111827', muted: '#6b7280' }

// Labels short enough for the label column.
const LATEST_LABELS = {
  'read-cached': 'read(), unchanged (cache) vs readFileSync',
  'read-uncached': 'read() after a change vs readFileSync',
  write: 'write() vs writeFileSync',
}
const TRIP_LABELS = {
  'so-sync': 'share-object waitForChangeSync',
  'so-promise': 'share-object waitForChange',
  'so-watch': 'share-object watch()',
  'channel-sync': 'Channel receiveSync',
  'channel-recv': 'Channel recv()',
  ipc: 'child_process IPC',
  'worker-sab': 'worker + Atomics.wait (in-process)',
}

/** The chart's groups of bars from a results object. */
function groupsOf(results) {
  const groups = []
  // The threshold drawn on a bar: the (first) target that applies to its row.
  const targetFor = (sectionId, row) => {
    const t = targetsOf(results.targets, sectionId, row)[0]
    return t ? { value: t.min } : null
  }
  const latest = results.sections.find((s) => s.id === 'latest-value')
  if (latest) {
    groups.push({
      title: `Latest value, ${latest.valueBytes / 1024} KiB string — fs time ÷ share-object time`,
      bars: latest.rows.map((r) => ({
        label: LATEST_LABELS[r.id] || r.label,
        value: r.ratio,
        kind: 'so',
        target: targetFor(latest.id, r),
      })),
    })
  }
  const trips = results.sections.find((s) => s.id === 'round-trip')
  if (trips) {
    groups.push({
      title: 'Cross-process round trip — Unix socket time ÷ transport time (socket = 1×)',
      bars: trips.rows
        .filter((r) => !r.baseline)
        .map((r) => ({
          label: (TRIP_LABELS[r.id] || r.label) + (r.spinners ? ` (spins: ${r.spinners} cores)` : ''),
          value: r.vsSocket,
          kind: r.reference ? 'ref' : /^(so|channel)-/.test(r.id) ? 'so' : 'alt',
          target: targetFor(trips.id, r),
        })),
    })
  }
  const stream = results.sections.find((s) => s.id === 'channel-streaming')
  if (stream) groups.push(...streamGroups(stream, results.targets))
  const keyv = results.sections.find((s) => s.id === 'keyv')
  if (keyv) groups.push(keyvGroup(keyv))
  return groups
}

const KEYV_LABELS = { map: "Keyv's default Map", sqlite: '@keyv/sqlite', 'sqlite-wal': '@keyv/sqlite (WAL)' }
// share-object/keyv against each alternative: ops/s ratios, and the visibility time ratio.
function keyvGroup(section) {
  const bars = []
  for (const r of section.rows) {
    if (!KEYV_LABELS[r.id]) continue
    bars.push({ label: `get vs ${KEYV_LABELS[r.id]}`, value: r.getVsShareObject, kind: 'so', target: null })
    bars.push({ label: `set vs ${KEYV_LABELS[r.id]}`, value: r.setVsShareObject, kind: 'so', target: null })
  }
  for (const v of section.visible) {
    if (!KEYV_LABELS[v.id]) continue
    bars.push({ label: `visible in another process vs ${KEYV_LABELS[v.id]}`, value: v.vsShareObject, kind: 'so', target: null })
  }
  return { title: "Keyv over share-object/keyv — its ops/s ÷ the store's (visibility: the store's time ÷ share-object's)", bars }
}

const STREAM_LABELS = {
  'socket-coalesced': 'socket, writes coalesced',
  'channel-single': 'Channel send / receiveSync',
  'channel-batch': 'Channel sendBatch / receiveBatch',
  'channel-consume': 'Channel send / consume (zero-copy)',
}
// Two groups: every form against the per-message-write socket, and the Channel's bytes/s
// against the in-process copy at the size that has a target for it.
function streamGroups(section, targets) {
  const streamTarget = (measure, size) => targets.find((t) => t.section === section.id && t.measure === measure && (size === undefined || t.size === size))
  const vsSocket = {
    title: 'Channel streaming, one way — messages/s ÷ Unix socket with one write() per message (socket = 1×)',
    bars: [],
  }
  for (const g of section.sizes) {
    for (const r of g.rows) {
      if (!STREAM_LABELS[r.id]) continue
      const channel = r.kind === 'channel'
      const target = channel && streamTarget('vsSocket', g.size)
      vsSocket.bars.push({ label: `${bytes(g.size)}: ${STREAM_LABELS[r.id]}`, value: r.vsSocket, kind: channel ? 'so' : 'alt', target: target ? { value: target.min } : null })
    }
  }
  const groups = [vsSocket]
  const copyTarget = streamTarget('vsCopy')
  const big = copyTarget && section.sizes.find((g) => g.size === copyTarget.size)
  if (big) {
    groups.push({
      title: `Channel streaming, ${bytes(big.size)} — MB/s ÷ in-process Buffer.copy MB/s (the ceiling; copy = 1×)`,
      bars: big.rows
        .filter((r) => r.kind === 'channel')
        .map((r) => ({ label: `${bytes(big.size)}: ${STREAM_LABELS[r.id]}`, value: r.vsCopy, kind: 'so', target: { value: copyTarget.min } })),
    })
  }
  return groups
}

// Powers of ten spanning every bar, every target and 1×.
function domain(groups) {
  const values = [1]
  for (const g of groups) for (const b of g.bars) values.push(b.value, ...(b.target ? [b.target.value] : []))
  const finite = values.filter((v) => Number.isFinite(v) && v > 0)
  const lo = 10 ** Math.floor(Math.log10(Math.min(...finite)))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...finite)))
  return { lo: Math.min(lo, 0.1), hi: Math.max(hi, lo * 10, 10) }
}

function scaleOf({ lo, hi }) {
  const a = Math.log10(lo)
  const b = Math.log10(hi)
  return (v) => PLOT_X0 + ((Math.log10(Math.min(Math.max(v, lo), hi)) - a) / (b - a)) * (PLOT_X1 - PLOT_X0)
}

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function text(x, y, s, attrs = '') {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`
}

function bar(b, y, x) {
  const parts = []
  const x1 = x(1)
  const xv = Number.isFinite(b.value) ? x(b.value) : x1
  const left = Math.min(x1, xv)
  const width = Math.max(1, Math.abs(xv - x1))
  parts.push(text(LABEL_X, y + ROW_H / 2 + 4, b.label, `font-size="12" fill="${COLORS.text}"`))
  parts.push(`<rect x="${left.toFixed(1)}" y="${(y + (ROW_H - BAR_H) / 2).toFixed(1)}" width="${width.toFixed(1)}" height="${BAR_H}" fill="${COLORS[b.kind]}" rx="2"/>`)
  if (b.target) {
    const xt = x(b.target.value)
    parts.push(`<line x1="${xt.toFixed(1)}" x2="${xt.toFixed(1)}" y1="${y + 2}" y2="${y + ROW_H - 2}" stroke="${COLORS.target}" stroke-width="2"/>`)
  }
  // Each bar against its own threshold (the table's read() target needs both read bars).
  const mark = !b.target || !Number.isFinite(b.value) ? '' : b.value >= b.target.value ? ' ✓' : ` ✗ (target ${ratio(b.target.value)})`
  const label = `${ratio(b.value)}${mark}`
  // Right of the bar, the 1× line and the target tick, whichever is furthest right.
  const tx = Math.max(xv, x1, b.target ? x(b.target.value) : x1) + 6
  parts.push(text(tx, y + ROW_H / 2 + 4, label, `font-size="12" fill="${COLORS.text}"`))
  return parts
}

// Vertical lines at each power of ten between `top` and `bottom`, labelled below if asked.
function grid(dom, x, top, bottom, labels) {
  const parts = []
  for (let v = dom.lo; v <= dom.hi * 1.0001; v *= 10) {
    const xv = x(v)
    const one = Math.abs(v - 1) < 1e-9
    parts.push(`<line x1="${xv.toFixed(1)}" x2="${xv.toFixed(1)}" y1="${top}" y2="${bottom}" stroke="${one ? COLORS.axis : COLORS.grid}" stroke-width="${one ? 1.5 : 1}"/>`)
    if (labels) parts.push(text(xv, bottom + 14, ratio(v), `font-size="11" fill="${COLORS.muted}" text-anchor="middle"`))
  }
  return parts
}

function legend(y) {
  const items = [
    ['so', 'share-object'],
    ['alt', 'other transport'],
    ['ref', 'in-process reference'],
  ]
  const parts = []
  let lx = LABEL_X
  for (const [kind, name] of items) {
    parts.push(`<rect x="${lx}" y="${y - 9}" width="12" height="12" fill="${COLORS[kind]}" rx="2"/>`, text(lx + 17, y + 1, name, `font-size="11" fill="${COLORS.text}"`))
    lx += 30 + name.length * 6.5
  }
  parts.push(`<line x1="${lx}" x2="${lx}" y1="${y - 10}" y2="${y + 4}" stroke="${COLORS.target}" stroke-width="2"/>`, text(lx + 7, y + 1, 'target', `font-size="11" fill="${COLORS.text}"`))
  return parts
}

/** The SVG document for a results object. */
function render(results) {
  const groups = groupsOf(results)
  const dom = domain(groups)
  const x = scaleOf(dom)
  const m = results.machine
  const lines = []
  const body = []
  let y = 96
  groups.forEach((g, i) => {
    body.push(text(LABEL_X, y + 14, g.title, `font-size="13" font-weight="bold" fill="${COLORS.text}"`))
    y += 22
    const top = y
    for (const b of g.bars) {
      body.push(...bar(b, y, x))
      y += ROW_H
    }
    lines.push(...grid(dom, x, top, y, i === groups.length - 1))
    y += 12
  })
  y += 30
  const notes = [
    'Log scale. Each bar starts at 1× (parity): to the right, share-object or the transport is faster than the comparison; to the left, slower.',
    'Ratios are medians measured in one run on this machine. A spinning case needs a free core per spinner.',
  ]
  const busy = Math.max(m.busyCoresAtStart ?? 0, m.busyCoresAtEnd ?? 0)
  if (busy > 0.25) notes.push(`Other processes kept up to ${busy} of ${m.cores} cores busy (sampled before and after the run).`)
  if (results.quick) notes.unshift('QUICK MODE (smoke test): numbers are not meaningful.')
  const footer = notes.map((n, i) => text(LABEL_X, y + i * 16, n, `font-size="11" fill="${COLORS.muted}"`))
  y += notes.length * 16 + 10
  const head = [
    text(LABEL_X, 28, 'share-object benchmark: speed-up ratios (higher is better)', `font-size="17" font-weight="bold" fill="${COLORS.text}"`),
    text(LABEL_X, 48, `Machine: ${machineLine(m)}`, `font-size="12" fill="${COLORS.muted}"`),
    text(LABEL_X, 64, `share-object ${m.shareObject} · ${m.date.slice(0, 10)}`, `font-size="12" fill="${COLORS.muted}"`),
    ...legend(84),
  ]
  const height = Math.ceil(y)
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" role="img" aria-label="share-object benchmark ratios">`,
    `<rect width="${W}" height="${height}" fill="#ffffff"/>`,
    ...head,
    ...lines,
    ...body,
    ...footer,
    '</svg>',
    '',
  ].join('\n')
}

module.exports = { render }
