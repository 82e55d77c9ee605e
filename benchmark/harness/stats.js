'use strict'
// Summary statistics over timing samples: median, p99 (nearest rank), mean, min, max.
// Every case reports medians for its ratios (robust to the odd slow sample on a shared
// machine) and p99 for the tail.

/** Nearest-rank percentile of an ascending array (`p` from 0 to 100). */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

/** Median of an ascending array (mean of the two middle values for an even count). */
function median(sorted) {
  const n = sorted.length
  if (n === 0) return NaN
  const mid = n >> 1
  return n % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** { n, median, p99, mean, min, max } of numeric samples (any iterable of numbers). */
function summarize(samples) {
  const sorted = Float64Array.from(samples).sort()
  let sum = 0
  for (const x of sorted) sum += x
  return {
    n: sorted.length,
    median: median(sorted),
    p99: percentile(sorted, 99),
    mean: sorted.length ? sum / sorted.length : NaN,
    min: sorted.length ? sorted[0] : NaN,
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  }
}

module.exports = { median, summarize }
