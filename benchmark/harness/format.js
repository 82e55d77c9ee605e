'use strict'
// Human-readable numbers for the Markdown table and the SVG chart: durations from
// nanoseconds, byte sizes, ratios.

/** A duration given in nanoseconds: "13 ns", "6.4 µs", "1.25 ms". */
function duration(ns) {
  if (!Number.isFinite(ns)) return 'n/a'
  if (ns < 1_000) return `${sig(ns)} ns`
  if (ns < 1_000_000) return `${sig(ns / 1_000)} µs`
  if (ns < 1_000_000_000) return `${sig(ns / 1_000_000)} ms`
  return `${sig(ns / 1_000_000_000)} s`
}

/** A byte count: "812 KiB", "41.3 MiB"; signed when `signed` is set. */
function bytes(n, signed = false) {
  if (!Number.isFinite(n)) return 'n/a'
  const sign = n < 0 ? '−' : signed ? '+' : ''
  const a = Math.abs(n)
  if (a < 1024) return `${sign}${a} B`
  if (a < 1024 * 1024) return `${sign}${sig(a / 1024)} KiB`
  return `${sign}${sig(a / 1024 / 1024)} MiB`
}

/** A ratio: "490×", "25×", "1.3×", "0.85×". */
function ratio(r) {
  if (!Number.isFinite(r)) return 'n/a'
  return `${sig(r)}×`
}

/** An integer with thousands separators, signed when `signed` is set. */
function count(n, signed = false) {
  if (!Number.isFinite(n)) return 'n/a'
  const s = Math.abs(n).toLocaleString('en-US')
  return n < 0 ? `−${s}` : signed ? `+${s}` : s
}

// Three significant figures at most, without trailing zeros ("1.30" -> "1.3").
function sig(x) {
  if (x === 0) return '0'
  const digits = x >= 100 ? 0 : x >= 10 ? 1 : 2
  return String(Number(x.toFixed(digits)))
}

module.exports = { duration, bytes, ratio, count, sig }
