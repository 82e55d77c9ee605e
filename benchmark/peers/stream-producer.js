'use strict'
// Producer of the Channel streaming case (cases/channel-streaming.js): sends `count`
// messages of `size` bytes to the parent each time the parent asks, in one of five forms.
// node stream-producer.js <form> <channel or socket path> <size> <batch>
//
// Forms:
//   channel-single     Channel#send() per message; when the channel is full, await
//                      sendAsync() of that message (it waits for room), then go on.
//   channel-consume    the same (the parent receives with consume() instead).
//   channel-batch      Channel#sendBatch() of `batch` messages at a time; when it sends only
//                      part of them, await sendAsync() of the first unsent one, then
//                      sendBatch() the rest.
//   socket             a Unix domain socket, one socket.write() per message of a
//                      length-prefixed frame ([u32 LE length][message]); waits for 'drain'
//                      when write() returns false (what a Node user writes).
//   socket-coalesced   the same frames, many per socket.write() (about CHUNK_BYTES a write).
//
// Every message is `size` bytes: its sequence number (u32 LE, from 0 each run) in bytes
// 0-3, the sequence number's low byte in its last byte, filler in between. The consumer
// checks both, so a lost, repeated or torn message fails the run.
//
// Protocol: prints {"ready":true} once connected; then every stdin line {"run":r,"count":n}
// starts a run, answered by {"done":true,"run":r,"t0":…} where t0 is
// process.hrtime.bigint() just before the first message was sent (CLOCK_MONOTONIC, so the
// parent can compare it with its own clock). Ends when stdin closes or the parent
// disappears.

const net = require('node:net')
const { shareObject, print, fail, exitWithParent } = require('./common.js')

const WAIT_MS = 10_000 // a producer blocked this long on a full channel fails
const CHUNK_BYTES = 256 * 1024

function message(buf, seq) {
  buf.writeUInt32LE(seq, 0)
  buf[buf.length - 1] = seq & 0xff
  return buf
}

function filled(size) {
  const buf = Buffer.alloc(size)
  for (let i = 4; i < size - 1; i++) buf[i] = (i * 31) & 0xff
  return buf
}

// --- Channel ---------------------------------------------------------------------------

async function channelSingle(channel, size, count) {
  const buf = filled(size)
  const t0 = process.hrtime.bigint()
  for (let seq = 0; seq < count; seq++) {
    message(buf, seq)
    if (!channel.send(buf)) await channel.sendAsync(buf, { timeout: WAIT_MS })
  }
  return t0
}

async function channelBatch(channel, size, count, batch) {
  const full = Array.from({ length: Math.min(batch, count) }, () => filled(size))
  const t0 = process.hrtime.bigint()
  for (let first = 0; first < count; first += full.length) {
    const msgs = count - first >= full.length ? full : full.slice(0, count - first)
    for (let i = 0; i < msgs.length; i++) message(msgs[i], first + i)
    let sent = channel.sendBatch(msgs)
    while (sent < msgs.length) {
      await channel.sendAsync(msgs[sent++], { timeout: WAIT_MS }) // waits for room
      if (sent < msgs.length) sent += channel.sendBatch(msgs.slice(sent))
    }
  }
  return t0
}

// --- Unix domain socket ----------------------------------------------------------------

function drained(socket) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`socket did not drain within ${WAIT_MS} ms`)), WAIT_MS)
    const onDrain = () => done(null)
    const onClose = () => done(new Error('socket closed while writing'))
    const done = (err) => {
      clearTimeout(timer)
      socket.off('drain', onDrain)
      socket.off('close', onClose)
      if (err) reject(err)
      else resolve()
    }
    socket.on('drain', onDrain)
    socket.on('close', onClose)
  })
}

// One socket.write() per message: a fresh frame each time (write() keeps the Buffer until
// the kernel took it, so it cannot be reused).
async function socketSingle(socket, size, count) {
  const payload = filled(size)
  const t0 = process.hrtime.bigint()
  for (let seq = 0; seq < count; seq++) {
    const frame = Buffer.allocUnsafe(4 + size)
    frame.writeUInt32LE(size, 0)
    payload.copy(frame, 4)
    frame.writeUInt32LE(seq, 4)
    frame[3 + size] = seq & 0xff
    if (!socket.write(frame)) await drained(socket)
  }
  return t0
}

// The same frames packed into CHUNK_BYTES-sized writes.
async function socketCoalesced(socket, size, count) {
  const payload = filled(size)
  const perWrite = Math.max(1, Math.floor(CHUNK_BYTES / (4 + size)))
  const t0 = process.hrtime.bigint()
  for (let seq = 0; seq < count; ) {
    const frames = Math.min(perWrite, count - seq)
    const chunk = Buffer.allocUnsafe(frames * (4 + size))
    for (let at = 0; at < chunk.length; at += 4 + size) {
      chunk.writeUInt32LE(size, at)
      payload.copy(chunk, at + 4)
      chunk.writeUInt32LE(seq, at + 4)
      chunk[at + 3 + size] = seq & 0xff
      seq++
    }
    if (!socket.write(chunk)) await drained(socket)
  }
  return t0
}

function connect(socketPath) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    const timer = setTimeout(() => reject(new Error(`could not connect to ${socketPath} within ${WAIT_MS} ms`)), WAIT_MS)
    socket.once('connect', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

// --- main ------------------------------------------------------------------------------

async function main() {
  const [form, endpoint, sizeArg, batchArg] = process.argv.slice(2)
  const size = Number(sizeArg)
  const batch = Number(batchArg)
  if (!(size >= 4)) throw new Error(`bad size ${sizeArg}`)
  let produce
  if (form === 'channel-single' || form === 'channel-consume' || form === 'channel-batch') {
    const channel = shareObject.Channel.open(endpoint, { create: false })
    produce = form === 'channel-batch' ? (n) => channelBatch(channel, size, n, batch) : (n) => channelSingle(channel, size, n)
  } else if (form === 'socket' || form === 'socket-coalesced') {
    const socket = await connect(endpoint)
    socket.on('error', fail)
    produce = form === 'socket' ? (n) => socketSingle(socket, size, n) : (n) => socketCoalesced(socket, size, n)
  } else {
    throw new Error(`unknown form ${form}`)
  }
  // One run at a time, in the order asked.
  let queue = Promise.resolve()
  let partial = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop()
    for (const line of lines) {
      if (!line.trim()) continue
      const { run, count } = JSON.parse(line)
      queue = queue.then(async () => {
        const t0 = await produce(count)
        print({ done: true, run, t0: String(t0) })
      }).catch(fail)
    }
  })
  exitWithParent()
  print({ ready: true })
}

main().catch(fail)
