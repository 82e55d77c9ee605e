'use strict'
// The workload of the SharedMap case (cases/shared-map.js), built the same way in the
// parent and in every peer: 10,000 keys `user:0` … `user:9999`, each with a JSON document
// of exactly 100 bytes, in two variants (A and B, same length) so that consecutive passes
// of sets really change every value; the order in which a pass visits the keys (a fixed
// permutation, so consecutive operations hit unrelated keys); and the 100-byte documents
// of the visibility measure, which carry the writer's clock.

const KEYS = 10_000
const VALUE_BYTES = 100
// 7919 is prime, so i ↦ i × 7919 mod KEYS visits every key once per pass.
const STRIDE = 7919

const key = (i) => `user:${i}`

/** The document of key `i` in variant `v` ('A' or 'B'), as an object of exactly VALUE_BYTES of JSON. */
function documentOf(i, v) {
  const doc = { id: i, name: `User ${i}`, email: `u${i}@example.com`, active: true, v, pad: '' }
  const room = VALUE_BYTES - JSON.stringify(doc).length
  if (room < 0) throw new Error(`document ${i} is longer than ${VALUE_BYTES} bytes`)
  doc.pad = '-'.repeat(room)
  return doc
}

/** Everything a pass needs, as arrays indexed by key number. */
function workload() {
  const keys = Array.from({ length: KEYS }, (_, i) => key(i))
  const objects = ['A', 'B'].map((v) => keys.map((_, i) => documentOf(i, v)))
  const strings = objects.map((docs) => docs.map((d) => JSON.stringify(d)))
  const order = Uint32Array.from({ length: KEYS }, (_, i) => (i * STRIDE) % KEYS)
  return { keys, objects, strings, order }
}

// --- the visibility measure ---------------------------------------------------------------

/** The key the visibility measure writes and polls (one of the 10,000). */
const VISIBLE_KEY = key(42)

/**
 * A 100-byte JSON document naming the run, the sequence number of the write within it and
 * `t`, the writer's process.hrtime.bigint() just before the set (CLOCK_MONOTONIC: the same
 * clock in every process, so the reader subtracts it from its own).
 */
function stampedValue(run, seq, t) {
  const head = `{"run":${run},"seq":${seq},"t":"${t}","pad":"`
  return head + '-'.repeat(Math.max(0, VALUE_BYTES - head.length - 2)) + '"}'
}

/** { run, seq, t } of a stamped value (t as a BigInt), or null for anything else. */
function parseStamped(value) {
  if (typeof value !== 'string' || !value.startsWith('{"run":')) return null
  const doc = JSON.parse(value)
  return { run: doc.run, seq: doc.seq, t: BigInt(doc.t) }
}

module.exports = { KEYS, VALUE_BYTES, key, documentOf, workload, VISIBLE_KEY, stampedValue, parseStamped }
