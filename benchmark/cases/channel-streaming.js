'use strict'
// Case 3: Channel streaming. A spawned producer (`peers/stream-producer.js`) sends a fixed
// number of messages one way to the parent, which is the consumer; messages of 64 B, 1 KiB
// and 64 KiB. Every form delivers the same thing to the parent: each message as a Buffer
// (its own copy, or a view of a larger one), checked for its length, its sequence number
// (bytes 0-3) and the sequence number's low byte (the last byte), so a lost, repeated or
// torn message fails the run instead of reporting nonsense.
//
// Forms (rows):
// - socket:            Unix domain socket, one socket.write() of a length-prefixed frame per
//                      message (the baseline: what a Node user writes), 'drain' honoured.
//                      The parent parses frames out of the 'data' chunks into subarrays.
// - socket-coalesced:  the same frames, ~256 KiB of them per socket.write(): the best a
//                      socket does with little work, reported for honesty.
// - channel-single:    producer send() per message (sendAsync() of that message when the
//                      channel is full); parent receiveSync() per message.
// - channel-batch:     producer sendBatch() of many (sendAsync() of the first unsent one
//                      when it only sends part); parent receiveBatch(), and receiveSync()
//                      for one message when none waits.
// - channel-consume:   producer as channel-single; parent consume(): zero-copy views of the
//                      messages in the ring (checked in place, then released), and
//                      receiveSync() for one message when none waits.
// - copy:              in-process Buffer.copy of the same messages into a ring-sized buffer:
//                      the bandwidth ceiling, no second process.
//
// Timing: from the producer's first send (its process.hrtime.bigint(), CLOCK_MONOTONIC, so
// comparable across processes) to the parent's receipt of the last message. Each form runs a
// fixed number of messages per run, `rounds` runs, forms interleaved within a round (so a
// slow phase of the shared machine hits them alike); the row shows the median run's rate.
// Ratios are this ÷ the per-message-write socket (messages/s and bytes/s give the same ratio
// for one size). Channel capacity: 1 MiB for 64 B and 1 KiB, 4 MiB for 64 KiB (maxMessage =
// capacity / 8).

const net = require('node:net')
const path = require('node:path')
const { Channel } = require('../..')
const { spawnPeer } = require('../harness/peer.js')
const { median } = require('../harness/stats.js')

const KiB = 1024
const MiB = 1024 * KiB
const WAIT_MS = 5_000 // deadline of every single wait (a message, a connection, a reply)
const RUN_LIMIT_MS = 60_000 // a run that takes longer fails

const SIZES = [
  { size: 64, capacity: 1 * MiB },
  { size: 1 * KiB, capacity: 1 * MiB },
  { size: 64 * KiB, capacity: 4 * MiB },
]

const FORMS = [
  { id: 'socket', label: 'Unix socket, one write() per message', kind: 'socket', baseline: true },
  { id: 'socket-coalesced', label: 'Unix socket, writes coalesced (~256 KiB each)', kind: 'socket' },
  { id: 'channel-single', label: 'Channel send() → receiveSync(), per message', kind: 'channel', form: 'single' },
  { id: 'channel-batch', label: 'Channel sendBatch() → receiveBatch()', kind: 'channel', form: 'batch' },
  { id: 'channel-consume', label: 'Channel send() → consume(), zero-copy views', kind: 'channel', form: 'consume' },
  { id: 'copy', label: 'in-process Buffer.copy (ceiling)', kind: 'copy', reference: true },
]

// Messages per run, full mode, by form and size: from tens of ms (the copy) to under 1 s a
// run on a 2-core EPYC VM. The copy moves as many bytes as the batch form.
// Quick mode divides them by QUICK_DIVISOR.
const COUNTS = {
  socket: { 64: 200_000, 1024: 100_000, 65536: 10_000 },
  'socket-coalesced': { 64: 2_000_000, 1024: 500_000, 65536: 10_000 },
  'channel-single': { 64: 500_000, 1024: 300_000, 65536: 24_000 },
  'channel-batch': { 64: 2_500_000, 1024: 800_000, 65536: 32_000 },
  'channel-consume': { 64: 1_500_000, 1024: 800_000, 65536: 64_000 },
  copy: { 64: 2_500_000, 1024: 800_000, 65536: 32_000 },
}
const QUICK_DIVISOR = 50

/** Runs every form at every size; returns the section for the report. */
async function run(ctx) {
  const rounds = ctx.quick ? 1 : 3
  const sizes = []
  for (const spec of SIZES) sizes.push(await runSize(ctx, spec, rounds))
  return { id: 'channel-streaming', unit: 'messages/s', rounds, sizes }
}

function countOf(ctx, form, size) {
  const n = COUNTS[form.id][size]
  return ctx.quick ? Math.max(100, Math.floor(n / QUICK_DIVISOR)) : n
}

// All forms of one size: set up (a producer per form), `rounds` interleaved runs, torn down.
async function runSize(ctx, spec, rounds) {
  const { size, capacity } = spec
  const batch = Math.max(1, Math.min(4096, Math.floor(capacity / 4 / size))) // messages per sendBatch()
  const sessions = []
  try {
    for (const form of FORMS) {
      const count = countOf(ctx, form, size)
      const setup = form.kind === 'socket' ? setupSocket : form.kind === 'channel' ? setupChannel : setupCopy
      sessions.push({ form, count, runs: [], session: await setup(ctx, form, spec, batch) })
    }
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so no form always follows the same one.
      const order = sessions.map((_, i) => sessions[(i + round) % sessions.length])
      for (const s of order) {
        const ns = await s.session.run(round, s.count)
        s.runs.push(ns)
        await new Promise(setImmediate) // let the event loop run between runs (signals, I/O)
      }
    }
  } finally {
    await Promise.allSettled(sessions.map((s) => s.session.close()))
  }
  return report(spec, batch, sessions)
}

function report({ size, capacity }, batch, sessions) {
  const rows = sessions.map(({ form, count, runs }) => {
    const rates = runs.map((ns) => count / (ns / 1e9))
    const rate = median(Float64Array.from(rates).sort())
    return {
      id: form.id,
      label: form.label,
      kind: form.kind,
      baseline: Boolean(form.baseline),
      reference: Boolean(form.reference),
      messagesPerRun: count,
      runs: runs.length,
      runMs: runs.map((ns) => ns / 1e6),
      messagesPerSec: rate,
      messagesPerSecMin: Math.min(...rates),
      messagesPerSecMax: Math.max(...rates),
      bytesPerSec: rate * size,
    }
  })
  const socket = rows.find((r) => r.baseline)
  const copy = rows.find((r) => r.id === 'copy')
  for (const row of rows) {
    row.vsSocket = row.messagesPerSec / socket.messagesPerSec
    row.vsCopy = row.bytesPerSec / copy.bytesPerSec
  }
  return { size, capacity, maxMessage: capacity / 8, batch, rows }
}

// --- checks ----------------------------------------------------------------------------

function badMessage(form, msg, seq, size) {
  const got = msg.length >= 4 ? `seq ${msg.readUInt32LE(0)}, last byte ${msg[msg.length - 1]}` : 'too short'
  return new Error(`${form.id}: message ${seq} is wrong: ${msg.length} bytes (${got}), expected ${size} bytes with seq ${seq}, last byte ${seq & 0xff}`)
}

// Whether `msg` is message `seq` of `size` bytes (see peers/stream-producer.js).
function isMessage(msg, seq, size) {
  return msg.length === size && msg.readUInt32LE(0) === seq && msg[size - 1] === (seq & 0xff)
}

/** Sends the producer the command for one run; resolves once the line left this process. */
function startRun(peer, runId, count) {
  return new Promise((resolve, reject) => {
    if (peer.exit) return reject(new Error(`${peer.name} exited (${peer.exit.code ?? peer.exit.signal}) before run ${runId}${peer.stderrNote()}`))
    const timer = setTimeout(() => reject(new Error(`${peer.name}: could not send a command within ${WAIT_MS} ms`)), WAIT_MS)
    peer.child.stdin.write(JSON.stringify({ run: runId, count }) + '\n', (err) => {
      clearTimeout(timer)
      if (err) reject(err)
      else resolve()
    })
  })
}

// The producer's report of a run (its first-send time), after the consumer has every message.
async function producerReport(peer, runId) {
  const done = await peer.message((m) => m.done === true && m.run === runId, WAIT_MS, `report of run ${runId}`)
  return BigInt(done.t0)
}

// A blocking receive that failed: the producer's own error (printed on its stdout, which the
// blocked event loop could not read yet) usually says more.
async function explain(peer, err) {
  await new Promise((resolve) => setTimeout(resolve, 200))
  const failed = peer.messages.find((m) => m.error !== undefined)
  if (failed) return new Error(`${peer.name} failed: ${failed.error}`)
  if (peer.exit) return new Error(`${err.message} (the producer exited: ${peer.exit.code ?? peer.exit.signal}${peer.stderrNote()})`)
  return err
}

// --- Channel ---------------------------------------------------------------------------

async function setupChannel(ctx, form, { size, capacity }, batch) {
  const file = path.join(ctx.dir, `stream-${form.id}-${size}`)
  const channel = Channel.open(file, { capacity })
  if (channel.maxMessage < size) throw new Error(`${form.id}: maxMessage ${channel.maxMessage} < ${size}`)
  channel.receive() // the first receive makes the parent the consumer
  const peer = spawnPeer('stream-producer', [form.id, file, size, batch])
  await peer.ready()
  const consume = { single: consumeSingle, batch: consumeBatch, consume: consumeViews }[form.form]
  return {
    async run(round, count) {
      const runId = round
      await startRun(peer, runId, count)
      let t1
      try {
        t1 = consume(channel, form, size, count)
      } catch (err) {
        throw await explain(peer, err)
      }
      const t0 = await producerReport(peer, runId)
      const extra = channel.receive()
      if (extra !== null) throw new Error(`${form.id}: a message arrived after the last one (${extra.length} bytes)`)
      return Number(t1 - t0)
    },
    async close() {
      await peer.stop()
      channel.close()
    },
  }
}

// receiveSync() per message; returns the time the last one arrived.
function consumeSingle(channel, form, size, count) {
  const started = Date.now()
  for (let seq = 0; seq < count; seq++) {
    const msg = channel.receiveSync(WAIT_MS)
    if (msg === null) throw new Error(`${form.id}: message ${seq} of ${count} did not arrive within ${WAIT_MS} ms`)
    if (!isMessage(msg, seq, size)) throw badMessage(form, msg, seq, size)
    if ((seq & 0xfff) === 0 && Date.now() - started > RUN_LIMIT_MS) throw new Error(`${form.id}: run exceeded ${RUN_LIMIT_MS} ms`)
  }
  return process.hrtime.bigint()
}

// receiveBatch() of whatever waits; receiveSync() of one message when nothing does.
function consumeBatch(channel, form, size, count) {
  const started = Date.now()
  let seq = 0
  while (seq < count) {
    let msgs = channel.receiveBatch()
    if (msgs.length === 0) {
      const msg = channel.receiveSync(WAIT_MS)
      if (msg === null) throw new Error(`${form.id}: message ${seq} of ${count} did not arrive within ${WAIT_MS} ms`)
      msgs = [msg]
    }
    if (seq + msgs.length > count) throw new Error(`${form.id}: ${seq + msgs.length - count} message(s) more than the ${count} sent`)
    for (let i = 0; i < msgs.length; i++, seq++) {
      if (!isMessage(msgs[i], seq, size)) throw badMessage(form, msgs[i], seq, size)
    }
    if (Date.now() - started > RUN_LIMIT_MS) throw new Error(`${form.id}: run exceeded ${RUN_LIMIT_MS} ms`)
  }
  return process.hrtime.bigint()
}

// consume() of whatever waits (views checked in place); receiveSync() of one when none does.
function consumeViews(channel, form, size, count) {
  const started = Date.now()
  let seq = 0
  const check = (msg) => {
    if (seq >= count) throw new Error(`${form.id}: more messages than the ${count} sent`)
    if (!isMessage(msg, seq, size)) throw badMessage(form, msg, seq, size)
    seq++
  }
  while (seq < count) {
    if (channel.consume(check) === 0) {
      const msg = channel.receiveSync(WAIT_MS)
      if (msg === null) throw new Error(`${form.id}: message ${seq} of ${count} did not arrive within ${WAIT_MS} ms`)
      check(msg)
    }
    if (Date.now() - started > RUN_LIMIT_MS) throw new Error(`${form.id}: run exceeded ${RUN_LIMIT_MS} ms`)
  }
  return process.hrtime.bigint()
}

// --- Unix domain socket ----------------------------------------------------------------

// Parses [u32 LE length][bytes] frames out of 'data' chunks: a frame inside one chunk is
// delivered as a subarray of it; a frame split across chunks is assembled in a Buffer of
// its own (one copy), as careful Node code does.
function frameParser(onMessage) {
  let head = null // the first bytes (< 4) of a header split across chunks
  let frame = null // a message split across chunks, being filled
  let filled = 0
  return (chunk) => {
    let at = 0
    if (frame) {
      const n = Math.min(frame.length - filled, chunk.length)
      chunk.copy(frame, filled, 0, n)
      filled += n
      at = n
      if (filled < frame.length) return
      const done = frame
      frame = null
      onMessage(done)
    }
    if (head) {
      chunk = Buffer.concat([head, chunk.subarray(at)])
      head = null
      at = 0
    }
    while (chunk.length - at >= 4) {
      const length = chunk.readUInt32LE(at)
      const end = at + 4 + length
      if (end <= chunk.length) {
        onMessage(chunk.subarray(at + 4, end))
        at = end
        continue
      }
      frame = Buffer.allocUnsafe(length)
      filled = chunk.copy(frame, 0, at + 4)
      return
    }
    if (at < chunk.length) head = chunk.subarray(at)
  }
}

async function setupSocket(ctx, form, { size }, batch) {
  const socketPath = path.join(ctx.dir, `stream-${form.id}-${size}.sock`)
  const server = net.createServer()
  const connected = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${form.id}: the producer did not connect within ${WAIT_MS} ms`)), WAIT_MS)
    server.once('connection', (socket) => {
      clearTimeout(timer)
      resolve(socket)
    })
    server.once('error', reject)
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, resolve)
  })
  let peer = null
  let socket = null
  try {
    peer = spawnPeer('stream-producer', [form.id, socketPath, size, batch])
    ;[socket] = await Promise.all([connected, peer.ready()])
  } catch (err) {
    server.close()
    if (peer) await peer.stop()
    throw err
  }
  // The run in progress: messages are checked as they arrive; `finish` settles it.
  let current = null
  let failure = null
  const fail = (err) => {
    failure ??= err
    if (current) current.finish(failure)
  }
  socket.on('data', frameParser((msg) => {
    if (!current) return fail(new Error(`${form.id}: a message arrived outside a run (${msg.length} bytes)`))
    if (current.seq >= current.count) return fail(new Error(`${form.id}: more messages than the ${current.count} sent`))
    if (!isMessage(msg, current.seq, size)) return fail(badMessage(form, msg, current.seq, size))
    if (++current.seq === current.count) current.finish(null, process.hrtime.bigint())
  }))
  socket.on('error', fail)
  socket.on('close', () => fail(new Error(`${form.id}: the socket closed`)))
  const cancelExit = peer.onExit(fail)
  return {
    async run(round, count) {
      if (failure) throw failure
      const runId = round
      const received = new Promise((resolve, reject) => {
        const timer = setTimeout(() => fail(new Error(`${form.id}: run exceeded ${RUN_LIMIT_MS} ms (${current.seq} of ${count} messages)`)), RUN_LIMIT_MS)
        current = {
          seq: 0,
          count,
          finish(err, t1) {
            clearTimeout(timer)
            current = null
            if (err) reject(err)
            else resolve(t1)
          },
        }
      })
      await startRun(peer, runId, count)
      const t1 = await received
      const t0 = await producerReport(peer, runId)
      if (failure) throw failure
      return Number(t1 - t0)
    },
    async close() {
      cancelExit()
      socket.removeAllListeners('close')
      socket.destroy()
      await peer.stop()
      await new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

// --- in-process copy (the ceiling) -----------------------------------------------------

// The same messages copied with Buffer.copy into a buffer as large as the ring, wrapping
// around like the ring does (so the destination stays as warm or cold as the ring's).
async function setupCopy(ctx, form, { size, capacity }) {
  const src = Buffer.alloc(size, 7)
  const dst = Buffer.allocUnsafeSlow(capacity)
  return {
    async run(round, count) {
      let at = 0
      const t0 = process.hrtime.bigint()
      for (let seq = 0; seq < count; seq++) {
        if (at + size > dst.length) at = 0
        src.copy(dst, at)
        at += size
      }
      const t1 = process.hrtime.bigint()
      if (dst[size - 1] !== 7) throw new Error('copy: the bytes did not arrive')
      return Number(t1 - t0)
    },
    async close() {},
  }
}

module.exports = { run }
