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

/** A fraction as a percentage: "52 %", "7.9 %", "0.35 %". */
function percent(x) {
  if (!Number.isFinite(x)) return 'n/a'
  const p = x * 100
  return `${p >= 1 ? sig(p) : String(Number(p.toPrecision(2)))} %`
}

/** A rate per second: "812", "354 k", "4.93 M". */
function rate(n) {
  if (!Number.isFinite(n)) return 'n/a'
  if (n < 1_000) return sig(n)
  if (n < 1_000_000) return `${sig(n / 1_000)} k`
  return `${sig(n / 1_000_000)} M`
}

/** Bytes per second as MB/s (10^6 bytes): "22.7", "1,330". */
function megabytes(bytesPerSec) {
  if (!Number.isFinite(bytesPerSec)) return 'n/a'
  const mb = bytesPerSec / 1e6
  return mb >= 1_000 ? Math.round(mb).toLocaleString('en-US') : sig(mb)
}

// Three significant figures at most, without trailing zeros ("1.30" -> "1.3").
function sig(x) {
  if (x === 0) return '0'
  const digits = x >= 100 ? 0 : x >= 10 ? 1 : 2
  return String(Number(x.toFixed(digits)))
}

module.exports = { duration, bytes, ratio, count, rate, megabytes, percent }
