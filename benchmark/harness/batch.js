'use strict'
// Timing of nanosecond-scale operations: a single process.hrtime.bigint() costs ~40 ns,
// as much as the operations themselves, so each sample is a batch of `n` calls timed as
// a whole and divided by `n` (ns per call). The batch size is calibrated once so a batch
// lasts about `targetMs`; a sample therefore includes any GC pause that falls inside it.

/** Nanoseconds per call of `batch(n)` (which runs the operation n times). */
function timeBatch(batch, n) {
  const t0 = process.hrtime.bigint()
  batch(n)
  return Number(process.hrtime.bigint() - t0) / n
}

/** The smallest power of two n for which batch(n) lasts at least targetMs (also a warm-up). */
function calibrate(batch, targetMs) {
  const targetNs = targetMs * 1e6
  for (let n = 1; ; n *= 2) {
    const perCall = timeBatch(batch, n)
    if (perCall * n >= targetNs || n >= 1 << 30) return n
  }
}

module.exports = { timeBatch, calibrate }
