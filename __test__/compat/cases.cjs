'use strict'

// What the cross-runtime smoke checks: one entry per thing two processes of different runtimes
// share. For every ordered pair of runtimes (sender, receiver), the receiver runs `receive()` in
// its own process and calls `ready()` once it waits; then the sender runs `send()` in another;
// the receiver's result must equal `expected(run)`. `run` is { token: a string unique to the
// run, nonce: an integer in 1..2^30, timeout: ms }. `so` is the share-object module.
//
// A new shared structure is one more entry here (as the SharedMap's was); the test file and
// peer.cjs need no change.

const { Buffer } = require('node:buffer')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `fn()` until it returns something other than undefined, for at most `ms`. */
async function poll(fn, ms, what) {
  const until = Date.now() + ms
  for (;;) {
    const v = fn()
    if (v !== undefined) return v
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(2)
  }
}

const bigMessage = (token) => `${token}:`.repeat(Math.ceil(10_000 / (token.length + 1))) // over 4 KiB: its own Buffer

module.exports = [
  {
    name: 'value, waitForChange() woken by a write',
    async receive(so, file, run, ready) {
      const s = so.SharedObject.open(file)
      const since = s.version
      const changed = s.waitForChange(since, { timeout: run.timeout })
      ready()
      await changed
      const value = s.read()
      s.close()
      return value
    },
    send(so, file, run) {
      const s = so.SharedObject.open(file)
      s.write(run.token)
      s.close()
    },
    expected: (run) => run.token,
  },
  {
    name: 'value, waitForChangeSync() woken by a write',
    receive(so, file, run, ready) {
      const s = so.SharedObject.open(file)
      const since = s.version
      ready()
      s.waitForChangeSync(since, run.timeout)
      const value = s.read()
      s.close()
      return value
    },
    send(so, file, run) {
      const s = so.SharedObject.open(file)
      s.write(Buffer.from(run.token))
      s.close()
    },
    expected: (run) => run.token,
  },
  {
    name: 'value, watch() hears a write',
    receive(so, file, run, ready) {
      const s = so.SharedObject.open(file)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`watch() heard nothing in ${run.timeout} ms`)), run.timeout)
        const stop = s.watch((value) => {
          clearTimeout(timer)
          stop()
          s.close()
          resolve(value)
        })
        ready()
      })
    },
    send(so, file, run) {
      const s = so.SharedObject.open(file)
      s.write(run.token)
      s.close()
    },
    expected: (run) => run.token,
  },
  {
    name: 'channel, recv() and receiveSync() get a small and a large message',
    async receive(so, file, run, ready) {
      const ch = so.Channel.open(file)
      const first = ch.recv({ timeout: run.timeout }) // makes this handle the consumer, then waits
      ready()
      const small = String(await first)
      const large = ch.receiveSync(run.timeout)
      ch.close()
      return `${small} ${large === null ? 'none' : large.toString() === bigMessage(run.token) ? 'large ok' : 'large wrong'}`
    },
    send(so, file, run) {
      const ch = so.Channel.open(file)
      if (!ch.send(run.token) || !ch.send(bigMessage(run.token))) throw new Error('send() found the channel full')
      ch.close()
    },
    expected: (run) => `${run.token} large ok`,
  },
  {
    name: 'map, waitForChange(key) woken by a set; incr() adds to the same counter',
    async receive(so, file, run, ready) {
      const m = so.SharedMap.open(file)
      m.incr('count', 1)
      const changed = m.waitForChange('key', { timeout: run.timeout })
      ready()
      const value = await changed
      const result = `${value.token} ${m.get('count')}`
      m.close()
      return result
    },
    send(so, file, run) {
      const m = so.SharedMap.open(file)
      m.incr('count', run.nonce)
      m.set('key', { token: run.token })
      m.close()
    },
    expected: (run) => `${run.token} ${run.nonce + 1}`,
  },
  {
    name: 'Atomics on buffer: a store is seen by the other process',
    async receive(so, file, run, ready) {
      const s = so.SharedObject.open(file, { size: 64 })
      const ints = new Int32Array(s.buffer.buffer, s.buffer.byteOffset, 16)
      ready()
      const value = await poll(() => (Atomics.load(ints, 1) === 1 ? Atomics.load(ints, 0) : undefined), run.timeout, 'the flag')
      s.close()
      return String(value)
    },
    send(so, file, run) {
      const s = so.SharedObject.open(file, { size: 64 })
      const ints = new Int32Array(s.buffer.buffer, s.buffer.byteOffset, 16)
      Atomics.add(ints, 0, run.nonce)
      Atomics.store(ints, 1, 1)
      s.close()
    },
    expected: (run) => String(run.nonce),
  },
]
