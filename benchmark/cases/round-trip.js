'use strict'
// Case 2: cross-process round trip. The parent sends a small message (8 ASCII bytes), a
// spawned child (`node benchmark/peers/echo-*.js`) sends it back, and the parent times each
// round trip with process.hrtime.bigint() (its own cost, ~40 ns, is included; it is small
// next to microsecond round trips, and per-trip timing is what gives a true p99).
//
// share-object uses TWO segments, one per direction ("ping": parent → child, "pong":
// child → parent). With one segment and alternating versions each side would wake on its
// own writes too (watch() would fire for them); two segments make each side a plain
// single-writer / single-reader pair, the way a request/response pair would be built.
// Each trip is write(ping) → peer waits, read(), write(pong) → parent waits, read(pong):
// the same work as a socket echo, ending with the value as a string in the parent.
// The Channel cases likewise use two channels, one per direction (each side is the consumer
// of the one it reads): send(message) → the peer's receiveSync() / recv() → send() of the
// same Buffer back → the parent's receiveSync() / recv(), decoded as a latin1 string.
//
// All transports are set up at once and measured in interleaved rounds (every transport
// once per round), so a slow phase of a shared machine hits all of them alike. Ratios are
// socket median ÷ transport median: above 1 means fewer µs per round trip than the socket.
//
// Extension point: TRANSPORTS is the list of cases; a new transport is one more entry with
// the same shape: { id, label, kind: 'sync' | 'async', spinners, note,
// setup(ctx) → { roundTrip(message), abort(err), close() } }.

const net = require('node:net')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedObject, Channel } = require('../..')
const { spawnPeer } = require('../harness/peer.js')
const { trackWorker } = require('../harness/cleanup.js')
const { summarize } = require('../harness/stats.js')

const MESSAGES = 1024 // a ring of distinct 8-byte messages, built once
const STOP = 'stop'
const WAIT_MS = 5_000 // deadline of every blocking wait in the parent
const WATCHDOG_SLACK_MS = 10_000 // an async batch fails this long after its time budget

const TRANSPORTS = [
  {
    id: 'socket',
    label: 'Unix domain socket (net), echo',
    kind: 'async',
    spinners: 0,
    baseline: true,
    setup: setupSocket,
  },
  {
    id: 'so-sync',
    label: 'share-object waitForChangeSync',
    kind: 'sync',
    spinners: 2,
    note: 'spins then futex-waits on both sides: needs a free core per spinner (parent + child = 2)',
    setup: setupSharedSync,
  },
  {
    id: 'so-promise',
    label: 'share-object waitForChange (promise)',
    kind: 'async',
    spinners: 0,
    setup: (ctx) => setupSharedAsync(ctx, 'echo-promise', waitForChangeReceiver),
  },
  {
    id: 'so-watch',
    label: 'share-object watch()',
    kind: 'async',
    spinners: 0,
    setup: (ctx) => setupSharedAsync(ctx, 'echo-watch', watchReceiver),
  },
  {
    id: 'channel-sync',
    label: 'share-object Channel receiveSync',
    kind: 'sync',
    spinners: 2,
    note: 'receiveSync spins (~20 µs) then futex-waits on both sides: needs a free core per spinner (parent + child = 2)',
    setup: setupChannelSync,
  },
  {
    id: 'channel-recv',
    label: 'share-object Channel recv (promise)',
    kind: 'async',
    spinners: 0,
    note: 'recv() waits on a native notifier thread per side, which spins ~30 µs before it sleeps and polls ~20 µs+ after each wake-up',
    setup: setupChannelAsync,
  },
  {
    id: 'ipc',
    label: 'child_process IPC (process.send)',
    kind: 'async',
    spinners: 0,
    setup: setupIpc,
  },
  {
    id: 'worker-sab',
    label: 'worker_threads SharedArrayBuffer + Atomics.wait',
    kind: 'sync',
    spinners: 0,
    reference: true,
    note: 'in-process reference, not a peer process: a thread, an int32 instead of a string',
    setup: setupWorker,
  },
]

/** Runs every transport in interleaved rounds; returns the section for the report. */
async function run(ctx) {
  const { rounds, budgetMs, warmup, maxSamples } = ctx.quick
    ? { rounds: 1, budgetMs: 120, warmup: 200, maxSamples: 50_000 }
    : { rounds: 5, budgetMs: 2_000, warmup: 2_000, maxSamples: 400_000 }
  const messages = Array.from({ length: MESSAGES }, (_, i) => String(i + 1).padStart(8, '0'))
  const entries = []
  try {
    for (const transport of TRANSPORTS) {
      const session = await transport.setup({ ...ctx, messages })
      entries.push({ transport, session, samples: new Float64Array(maxSamples), n: 0, next: 1 })
    }
    for (let round = 0; round < rounds; round++) {
      for (const entry of entries) await measureRound(entry, { budgetMs, warmup, messages })
    }
  } finally {
    await Promise.allSettled(entries.map((e) => e.session.close()))
  }
  return report(entries)
}

// One round of one transport: a warm-up, then round trips timed one by one for budgetMs.
async function measureRound(entry, { budgetMs, warmup, messages }) {
  const { transport, session } = entry
  const budgetNs = BigInt(Math.round(budgetMs * 1e6))
  const watchdog = setTimeout(() => session.abort(new Error(`${transport.id}: round did not finish within ${budgetMs + WATCHDOG_SLACK_MS} ms`)), budgetMs + WATCHDOG_SLACK_MS)
  try {
    const loop = transport.kind === 'sync' ? syncLoop : asyncLoop
    await loop(entry, session, messages, warmup, null)
    await loop(entry, session, messages, Infinity, budgetNs)
  } catch (err) {
    // An aborted session's own failure (peer exit, watchdog) explains more than ERR_CLOSED.
    throw session.failure || err
  } finally {
    clearTimeout(watchdog)
  }
}

// Round trips until `count` are done or `budgetNs` has passed; records them if budgetNs is set.
function syncLoop(entry, session, messages, count, budgetNs) {
  const start = process.hrtime.bigint()
  for (let i = 0; i < count; i++) {
    const message = messages[entry.next++ & (MESSAGES - 1)]
    const t0 = process.hrtime.bigint()
    const answer = session.roundTrip(message)
    const t1 = process.hrtime.bigint()
    if (answer !== message) throw new Error(`round trip returned ${JSON.stringify(answer)} instead of ${JSON.stringify(message)}`)
    if (budgetNs === null) continue
    if (entry.n < entry.samples.length) entry.samples[entry.n++] = Number(t1 - t0)
    if (t1 - start >= budgetNs || entry.n >= entry.samples.length) break
  }
}

async function asyncLoop(entry, session, messages, count, budgetNs) {
  const start = process.hrtime.bigint()
  for (let i = 0; i < count; i++) {
    const message = messages[entry.next++ & (MESSAGES - 1)]
    const t0 = process.hrtime.bigint()
    const answer = await session.roundTrip(message)
    const t1 = process.hrtime.bigint()
    if (answer !== message) throw new Error(`round trip returned ${JSON.stringify(answer)} instead of ${JSON.stringify(message)}`)
    if (budgetNs === null) continue
    if (entry.n < entry.samples.length) entry.samples[entry.n++] = Number(t1 - t0)
    if (t1 - start >= budgetNs || entry.n >= entry.samples.length) break
  }
}

// Rows with median/p99/mean per transport and the ratio to the socket's median.
function report(entries) {
  const rows = entries.map(({ transport, samples, n }) => ({
    id: transport.id,
    label: transport.label,
    kind: transport.kind,
    spinners: transport.spinners,
    baseline: Boolean(transport.baseline),
    reference: Boolean(transport.reference),
    note: transport.note || null,
    ns: summarize(samples.subarray(0, n)),
  }))
  const socket = rows.find((r) => r.baseline)
  for (const row of rows) {
    row.vsSocket = socket.ns.median / row.ns.median
    row.vsSocketP99 = socket.ns.p99 / row.ns.p99
  }
  return { id: 'round-trip', unit: 'ns', rows }
}

// --- share-object -------------------------------------------------------------------

// Ends a session over a ping/pong pair: asks the peer to stop (through ping, while it is
// open), waits for it to exit, closes both ends.
async function closePair(peer, ping, pong, stop) {
  if (!ping.closed) stop()
  await peer.stop()
  ping.close()
  pong.close()
}

function openPair(dir, prefix) {
  const pingPath = path.join(dir, `${prefix}-ping`)
  const pongPath = path.join(dir, `${prefix}-pong`)
  const ping = SharedObject.open(pingPath, { size: 64 })
  const pong = SharedObject.open(pongPath, { size: 64 })
  return { ping, pong, pingPath, pongPath }
}

async function setupSharedSync(ctx) {
  const { ping, pong, pingPath, pongPath } = openPair(ctx.dir, 'sync')
  const peer = spawnPeer('echo-sync', [pingPath, pongPath])
  await peer.ready()
  let since = pong.version
  return {
    roundTrip(message) {
      ping.write(message)
      since = pong.waitForChangeSync(since, WAIT_MS)
      return pong.read()
    },
    abort() {}, // every wait above has its own deadline
    close: () => closePair(peer, ping, pong, () => ping.write(STOP)),
  }
}

// The parent's half of the promise case: resolves with pong's value after its next change.
// abort() closes pong, which rejects the pending wait (ERR_CLOSED).
function waitForChangeReceiver(pong) {
  let since = pong.version
  const received = (version) => {
    since = version
    return pong.read()
  }
  return {
    next: () => pong.waitForChange(since).then(received),
    abort: () => pong.close(),
    stop() {},
  }
}

// The parent's half of the watch case: a listener that resolves the pending round trip.
function watchReceiver(pong) {
  let pending = null
  const stop = pong.watch((value) => {
    const settle = pending
    pending = null
    if (settle) settle.resolve(value)
  })
  return {
    next: () =>
      new Promise((resolve, reject) => {
        pending = { resolve, reject }
      }),
    abort(err) {
      if (pending) pending.reject(err)
      pending = null
    },
    stop,
  }
}

async function setupSharedAsync(ctx, peerName, makeReceiver) {
  const { ping, pong, pingPath, pongPath } = openPair(ctx.dir, peerName)
  const peer = spawnPeer(peerName, [pingPath, pongPath])
  await peer.ready()
  const receiver = makeReceiver(pong)
  const session = {
    failure: null,
    roundTrip(message) {
      const answer = receiver.next()
      ping.write(message)
      return answer
    },
    abort(err) {
      session.failure ??= err
      receiver.abort(err)
    },
    close() {
      receiver.stop()
      return closePair(peer, ping, pong, () => ping.write(STOP))
    },
  }
  peer.onExit((err) => session.abort(err))
  return session
}

// --- share-object Channel -------------------------------------------------------------

const LATIN1 = { encoding: 'latin1' } // messages arrive as strings, like the socket's

function openChannelPair(dir, prefix) {
  const pingPath = path.join(dir, `${prefix}-ping`)
  const pongPath = path.join(dir, `${prefix}-pong`)
  const ping = Channel.open(pingPath, { capacity: 64 * 1024 })
  const pong = Channel.open(pongPath, { capacity: 64 * 1024 })
  pong.receive() // the first receive makes the parent pong's consumer
  return { ping, pong, pingPath, pongPath }
}

async function setupChannelSync(ctx) {
  const { ping, pong, pingPath, pongPath } = openChannelPair(ctx.dir, 'channel-sync')
  const peer = spawnPeer('echo-channel-sync', [pingPath, pongPath])
  await peer.ready()
  return {
    roundTrip(message) {
      if (!ping.send(message)) throw new Error('channel-sync: the ping channel is full (the peer stopped reading)')
      const answer = pong.receiveSync(WAIT_MS, LATIN1)
      if (answer === null) throw new Error(`channel-sync: no answer within ${WAIT_MS} ms`)
      return answer
    },
    abort() {}, // every wait above has its own deadline
    close: () => closePair(peer, ping, pong, () => ping.send(STOP)),
  }
}

// The parent's half of the recv case: roundTrip() asks for pong's next message first, then
// sends. abort() closes pong, which rejects the pending recv() (ERR_CLOSED).
async function setupChannelAsync(ctx) {
  const { ping, pong, pingPath, pongPath } = openChannelPair(ctx.dir, 'channel-recv')
  const peer = spawnPeer('echo-channel-recv', [pingPath, pongPath])
  await peer.ready()
  const session = {
    failure: null,
    roundTrip(message) {
      const answer = pong.recv(LATIN1)
      if (!ping.send(message)) {
        answer.catch(() => {}) // rejected by close(); this error says more
        throw new Error('channel-recv: the ping channel is full (the peer stopped reading)')
      }
      return answer
    },
    abort(err) {
      // Where the message of the stuck trip is tells which side missed it (a lost wake-up
      // of recv() if it still waits in a channel).
      if (!ping.closed && !pong.closed) {
        err = new Error(`${err.message} (bytes waiting: ${ping.queued} in ping for the peer, ${pong.queued} in pong for the parent)`)
      }
      session.failure ??= err
      pong.close()
    },
    close: () => closePair(peer, ping, pong, () => ping.send(STOP)),
  }
  peer.onExit((err) => session.abort(err))
  return session
}

// --- alternatives ---------------------------------------------------------------------

async function setupSocket(ctx) {
  const socketPath = path.join(ctx.dir, 'echo.sock')
  const peer = spawnPeer('echo-socket', [socketPath])
  await peer.ready()
  const socket = await connect(socketPath, WAIT_MS)
  socket.setEncoding('latin1')
  let pending = null
  let buffered = ''
  socket.on('data', (chunk) => {
    buffered += chunk
    if (!pending || buffered.length < pending.length) return
    const { resolve, length } = pending
    pending = null
    const answer = buffered.slice(0, length)
    buffered = buffered.slice(length)
    resolve(answer)
  })
  const abort = (err) => {
    if (pending) pending.reject(err)
    pending = null
  }
  socket.on('error', abort)
  peer.onExit(abort)
  return {
    roundTrip(message) {
      return new Promise((resolve, reject) => {
        pending = { resolve, reject, length: message.length }
        socket.write(message, 'latin1')
      })
    },
    abort,
    async close() {
      socket.destroy()
      await peer.stop()
    },
  }
}

function connect(socketPath, ms) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`could not connect to ${socketPath} within ${ms} ms`))
    }, ms)
    socket.once('connect', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

async function setupIpc() {
  const peer = spawnPeer('echo-ipc', [], { ipc: true })
  await peer.ready()
  let pending = null
  peer.child.on('message', (message) => {
    const resolve = pending && pending.resolve
    pending = null
    if (resolve) resolve(message)
  })
  const abort = (err) => {
    if (pending) pending.reject(err)
    pending = null
  }
  peer.onExit(abort)
  return {
    roundTrip(message) {
      return new Promise((resolve, reject) => {
        pending = { resolve, reject }
        peer.child.send(message)
      })
    },
    abort,
    async close() {
      if (peer.child.connected) peer.child.disconnect()
      await peer.stop()
    },
  }
}

async function setupWorker() {
  const PING = 0
  const PONG = 1
  const STOP_VALUE = -1
  const slots = new Int32Array(new SharedArrayBuffer(8))
  const worker = trackWorker(new Worker(path.join(__dirname, '..', 'peers', 'echo-sab-worker.js'), { workerData: { sab: slots.buffer } }))
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  await new Promise((resolve, reject) => {
    worker.once('online', resolve)
    worker.once('error', reject)
  })
  let counter = 0
  // Messages are strings for the other transports; here the worker echoes a counter, and
  // the message is returned as is once the counter came back (a check the trip happened).
  return {
    roundTrip(message) {
      const value = (counter = (counter % 0x7fff_fff0) + 1)
      const before = Atomics.load(slots, PONG)
      Atomics.store(slots, PING, value)
      Atomics.notify(slots, PING)
      while (Atomics.load(slots, PONG) !== value) {
        if (Atomics.wait(slots, PONG, before, WAIT_MS) === 'timed-out') throw new Error(`worker did not answer within ${WAIT_MS} ms`)
      }
      return message
    },
    abort() {},
    async close() {
      Atomics.store(slots, PING, STOP_VALUE)
      Atomics.notify(slots, PING)
      const timer = setTimeout(() => worker.terminate(), 2_000)
      await exited
      clearTimeout(timer)
    },
  }
}

module.exports = { run }
