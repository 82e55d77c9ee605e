'use strict'
// Channel: exactly-once delivery in per-producer order across processes, backpressure,
// dead producers, consumer take-over, and coded errors.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { Channel, SharedObject } = require('..')
const { tempDir, channel, spawnFixture, waitFor, within, exitOf } = require('./helpers.js')
const { check } = require('./fixtures/chan-message.js')

test('4 producer processes × 250,000 messages: each arrives exactly once, in per-producer order', async (t) => {
  const { file } = channel(t)
  const per = 250_000
  const consumer = spawnFixture(t, 'chan-consumer.js', [file, 4 * per])
  await waitFor(() => consumer.lines.includes('ready'), 10_000, 'the consumer to start')
  const producers = [1, 2, 3, 4].map((id) => spawnFixture(t, 'chan-producer.js', [file, id, per]))
  for (const p of producers) {
    const { code } = await exitOf(p, 180_000, 'a producer')
    assert.equal(code, 0, p.stderrText)
  }
  const { code } = await exitOf(consumer, 180_000, 'the consumer')
  const summary = JSON.parse(consumer.lines.at(-1))
  assert.equal(code, 0, summary.error)
  assert.deepEqual(summary, { received: 4 * per, perProducer: { 1: per, 2: per, 3: per, 4: per } })
})

test('a full channel: send() returns false and sendAsync() resumes once it drains', async (t) => {
  const { file, ch } = channel(t, { capacity: 1024 })
  const consumer = Channel.open(file)
  t.after(() => consumer.close())
  const msg = Buffer.alloc(120, 1) // 128-byte records: 8 fill the ring
  let sent = 0
  while (ch.send(msg)) sent++
  assert.equal(sent, 8)
  assert.equal(ch.send(msg), false)
  let resolved = false
  const pending = ch.sendAsync(Buffer.alloc(120, 2), { timeout: 10_000 }).then(() => {
    resolved = true
  })
  await new Promise((resolve) => setTimeout(resolve, 30))
  assert.equal(resolved, false, 'still waiting while full')
  assert.equal(consumer.receiveBatch().length, 8)
  await pending
  assert.deepEqual(consumer.receive(), Buffer.alloc(120, 2))
})

test('sendAsync() on a full channel rejects with ERR_TIMEOUT or an AbortError', async (t) => {
  const { ch } = channel(t, { capacity: 1024 })
  const msg = Buffer.alloc(100)
  while (ch.send(msg));
  await assert.rejects(ch.sendAsync(msg, { timeout: 20 }), { code: 'ERR_TIMEOUT' })
  const ac = new AbortController()
  const p = ch.sendAsync(msg, { signal: ac.signal })
  ac.abort()
  await assert.rejects(p, { name: 'AbortError' })
})

test('producers SIGKILLed mid-stream, 100 times: the consumer keeps receiving the others', async (t) => {
  const { file, ch } = channel(t, { capacity: 1 << 16 })
  const steady = spawnFixture(t, 'chan-producer.js', [file, 1, 'forever'])
  const next = new Map()
  let steadyCount = 0
  let victimsSeen = 0
  const drain = () => {
    for (const msg of ch.receiveBatch()) {
      const m = check(msg) // throws on a damaged message
      const expected = next.get(m.producer) ?? 0
      // A victim's messages may stop anywhere, but never arrive out of order or twice.
      assert.ok(m.seq === expected, `producer ${m.producer}: seq ${m.seq} after ${expected - 1}`)
      next.set(m.producer, expected + 1)
      if (m.producer === 1) steadyCount++
      else victimsSeen++
    }
  }
  await waitFor(() => (drain(), steadyCount > 0), 10_000, 'the steady producer')
  for (let round = 0; round < 100; round++) {
    const victim = spawnFixture(t, 'chan-producer.js', [file, 100 + round, 'forever'])
    const before = steadyCount
    await waitFor(() => (drain(), victim.lines.includes('ready')), 20_000, 'a victim to start')
    // Kill it at a moment that varies from round to round, while it sends.
    await new Promise((resolve) => setTimeout(resolve, round % 7))
    victim.kill('SIGKILL')
    await exitOf(victim, 10_000)
    await waitFor(() => (drain(), steadyCount > before + 10), 20_000, 'the steady producer to keep flowing')
  }
  steady.kill('SIGKILL')
  t.diagnostic(`steady messages: ${steadyCount}; messages from killed producers: ${victimsSeen}`)
})

test('a consumer killed with SIGKILL is taken over by one waiting with { wait: true }', async (t) => {
  const { file, ch } = channel(t)
  const first = spawnFixture(t, 'chan-consumer.js', [file, 1_000_000_000])
  await waitFor(() => first.lines.includes('ready'), 10_000, 'the first consumer')
  assert.equal(ch.hasConsumer, true)
  await assert.rejects(ch.claimConsumer(), { code: 'ERR_CONSUMER_BUSY' })
  assert.throws(() => ch.receive(), { code: 'ERR_CONSUMER_BUSY' })
  const takeover = ch.claimConsumer({ wait: true, timeout: 20_000 })
  first.kill('SIGKILL')
  await takeover
  assert.equal(ch.isConsumer, true)
  ch.send('for the new consumer')
  assert.equal(ch.receiveString(), 'for the new consumer')
})

test('async iteration and recv() with AbortSignal and timeout', { timeout: 20_000 }, async (t) => {
  const { file, ch } = channel(t)
  const producer = Channel.open(file)
  t.after(() => producer.close())
  setTimeout(() => producer.sendBatch(['a', 'b', 'c']), 10)
  const got = []
  for await (const msg of ch) {
    got.push(msg.toString())
    if (got.length === 3) break
  }
  assert.deepEqual(got, ['a', 'b', 'c'])
  await assert.rejects(ch.recv({ timeout: 20 }), { code: 'ERR_TIMEOUT' })
  const ac = new AbortController()
  const pending = ch.recv({ signal: ac.signal })
  ac.abort()
  await assert.rejects(pending, { name: 'AbortError' })
  setTimeout(() => producer.send('text'), 10)
  assert.equal(await ch.recv({ encoding: 'utf8', timeout: 10_000 }), 'text')
})

test('100 KiB messages pass through a 1 MiB channel between processes', async (t) => {
  const { file, ch } = channel(t, { capacity: 1 << 20 })
  assert.ok(ch.maxMessage >= 100 * 1024)
  const max = 100 * 1024
  const producer = spawnFixture(t, 'chan-producer.js', [file, 7, 300, max])
  const next = { seq: 0 }
  const deadline = Date.now() + 60_000
  while (next.seq < 300 && Date.now() < deadline) {
    const msg = ch.receiveSync(1000)
    if (msg === null) continue
    const m = check(msg, max)
    assert.equal(m.seq, next.seq++)
  }
  assert.equal(next.seq, 300)
  assert.equal((await exitOf(producer, 30_000)).code, 0)
})

test('oversize messages are a RangeError ERR_MESSAGE_TOO_LARGE', (t) => {
  const { ch } = channel(t, { capacity: 1024 })
  assert.equal(ch.maxMessage, 128)
  assert.throws(() => ch.send(Buffer.alloc(129)), { name: 'RangeError', code: 'ERR_MESSAGE_TOO_LARGE' })
  assert.throws(() => ch.sendBatch(['ok', 'x'.repeat(129)]), { code: 'ERR_MESSAGE_TOO_LARGE' })
  // A long string is measured before any room is made for it (the native path for strings
  // beyond 64 Ki units).
  assert.throws(() => ch.send('é'.repeat(200_000)), { name: 'RangeError', code: 'ERR_MESSAGE_TOO_LARGE' })
  assert.equal(ch.send(Buffer.alloc(128)), true)
})

test('a corrupted record or position is ERR_CORRUPT, never a crash or a hang', (t) => {
  const { file, ch } = channel(t, { capacity: 4096 })
  ch.send('fine')
  const fd = fs.openSync(file, 'r+')
  t.after(() => fs.closeSync(fd))
  const word = Buffer.alloc(8)
  word.writeUInt32LE(1_000_000, 0) // a length far beyond the ring
  word.writeUInt32LE(0x8000_0001, 4) // committed
  fs.writeSync(fd, word, 0, 8, 256) // the first record's header
  assert.throws(() => ch.receive(), { code: 'ERR_CORRUPT' })
  const tail = Buffer.alloc(8)
  tail.writeBigUInt64LE(1n << 40n)
  fs.writeSync(fd, tail, 0, 8, 64) // tail far beyond head + capacity
  assert.throws(() => ch.send('more'), { code: 'ERR_CORRUPT' })
  assert.throws(() => ch.receive(), { code: 'ERR_CORRUPT' })
})

test('batch forms: sendBatch() returns how many fit; receiveBatch() takes up to max', (t) => {
  const { ch } = channel(t, { capacity: 1024 })
  const msgs = Array.from({ length: 20 }, (_, i) => `message ${i}`.padEnd(60, '.'))
  const sent = ch.sendBatch(msgs)
  assert.ok(sent > 0 && sent < 20, `sent ${sent}`)
  assert.deepEqual(ch.receiveBatch(3, { encoding: 'utf8' }), msgs.slice(0, 3))
  assert.deepEqual(ch.receiveBatch().map(String), msgs.slice(3, sent))
  assert.deepEqual(ch.receiveBatch(), [])
  assert.equal(ch.receive(), null)
})

test('a channel is not a value segment, and the other way round', (t) => {
  const { file } = channel(t)
  assert.throws(() => SharedObject.open(file), { code: 'ERR_WRONG_KIND' })
  const dir = tempDir(t)
  const value = path.join(dir, 'value')
  SharedObject.open(value).close()
  assert.throws(() => Channel.open(value), { code: 'ERR_WRONG_KIND' })
})

test('an anonymous channel is shared with a child through stdio', (t) => {
  const ch = Channel.anonymous(1 << 16)
  t.after(() => ch.close())
  const script = `
    const { Channel } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const ch = Channel.fromFd(3)
    ch.send('from child')
  `
  execFileSync(process.execPath, ['-e', script], { stdio: ['ignore', 'inherit', 'inherit', ch.fd], timeout: 20_000 })
  assert.equal(ch.receiveString(), 'from child')
})

test('use after close() is ERR_CLOSED and pending recv() rejects with it', async (t) => {
  const { ch } = channel(t)
  const pending = ch.recv()
  ch.close()
  await assert.rejects(pending, { code: 'ERR_CLOSED' })
  assert.throws(() => ch.send('x'), { code: 'ERR_CLOSED' })
  assert.throws(() => ch.receive(), { code: 'ERR_CLOSED' })
})

test('consume(): zero-copy views of the waiting messages, in order, detached afterwards', (t) => {
  const { ch } = channel(t, { capacity: 4096 })
  assert.equal(ch.sendBatch(['one', 'two', 'three']), 3)
  const seen = []
  const views = []
  const n = ch.consume((view) => {
    assert.ok(Buffer.isBuffer(view))
    seen.push(view.toString())
    views.push(view)
  })
  assert.equal(n, 3)
  assert.deepEqual(seen, ['one', 'two', 'three'])
  // A view kept past the callback reads as empty instead of bytes a producer reuses.
  for (const view of views) assert.equal(view.length, 0)
  assert.equal(ch.queued, 0)
  assert.equal(ch.consume(() => assert.fail('no message waits')), 0)
  // max, and the messages after it stay queued.
  ch.sendBatch(['a', 'b', 'c'])
  assert.equal(ch.consume((v) => assert.equal(v.toString(), 'a'), 1), 1)
  assert.deepEqual(ch.receiveBatch().map(String), ['b', 'c'])
})

test('consume(): a callback that throws keeps the later messages queued; receiving inside it is ERR_INVALID_STATE', (t) => {
  const { ch } = channel(t, { capacity: 4096 })
  ch.sendBatch(['first', 'bad', 'third', 'fourth'])
  const boom = new Error('boom')
  assert.throws(() => ch.consume((v) => {
    if (v.toString() === 'bad') throw boom
  }), boom)
  assert.deepEqual(ch.receiveBatch().map(String), ['third', 'fourth'])
  ch.send('x')
  assert.throws(() => ch.consume(() => ch.receive()), { code: 'ERR_INVALID_STATE' })
  ch.send('y')
  assert.throws(() => ch.consume(() => ch.consume(() => {})), { code: 'ERR_INVALID_STATE' })
  assert.equal(ch.receive(), null, 'each message was delivered to the callback that threw')
  assert.throws(() => ch.consume('nope'), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => ch.consume(() => {}, 0), { code: 'ERR_OUT_OF_RANGE' })
})

test('consume(): closing the channel inside the callback is safe', (t) => {
  const { file } = channel(t)
  const ch = Channel.open(file)
  ch.sendBatch(['a', 'b'])
  let view
  assert.equal(ch.consume((v) => {
    view = v
    ch.close()
  }), 1)
  assert.equal(view.length, 0)
  assert.throws(() => ch.consume(() => {}), { code: 'ERR_CLOSED' })
  const next = Channel.open(file)
  t.after(() => next.close())
  assert.deepEqual(next.receiveBatch().map(String), ['b'])
})

test('consume() and large messages between processes: every byte checked, none twice', async (t) => {
  const { file, ch } = channel(t, { capacity: 1 << 20 })
  const max = 100 * 1024
  const producer = spawnFixture(t, 'chan-producer.js', [file, 3, 2000, max])
  const next = { seq: 0 }
  const deadline = Date.now() + 60_000
  let large = 0
  while (next.seq < 2000 && Date.now() < deadline) {
    // Alternate the zero-copy and the copying forms (large messages take the direct path).
    const got = next.seq % 3 === 0
      ? ch.consume((view) => assert.equal(check(view, max).seq, next.seq++))
      : ch.receiveBatch(5).map((msg) => {
        if (msg.length > 4096) large++
        assert.equal(check(msg, max).seq, next.seq++)
        return msg
      }).length
    if (got === 0) {
      const msg = ch.receiveSync(1000)
      if (msg !== null) assert.equal(check(msg, max).seq, next.seq++)
    }
  }
  assert.equal(next.seq, 2000)
  assert.ok(large > 100, `only ${large} messages over 4 KiB`)
  assert.equal((await exitOf(producer, 30_000)).code, 0)
})

test('consume(): close() or releaseConsumer() inside the callback keeps the undelivered messages', (t) => {
  const { file, ch } = channel(t, { capacity: 4096 })
  ch.sendBatch(['aaaa', 'bbbb', 'cccc'])
  const seen = []
  assert.equal(ch.consume((v) => {
    seen.push(v.toString())
    ch.releaseConsumer()
  }), 1)
  assert.deepEqual(seen, ['aaaa'])
  const next = Channel.open(file)
  t.after(() => next.close())
  assert.deepEqual(next.receiveBatch().map(String), ['bbbb', 'cccc'])
  next.sendBatch(['dddd', 'eeee'])
  const got = []
  assert.equal(next.consume((v) => {
    got.push(v.toString())
    next.close()
  }), 1)
  assert.deepEqual(got, ['dddd'])
  const last = Channel.open(file)
  t.after(() => last.close())
  assert.deepEqual(last.receiveBatch().map(String), ['eeee'])
})

test('sendAsync() copies its message: a consume() view forwarded to a full channel arrives whole', async (t) => {
  const { ch: from } = channel(t, { capacity: 4096 })
  const { ch: to } = channel(t, { capacity: 1024 })
  while (to.send(Buffer.alloc(100, 1)));
  from.send('forwarded')
  let pending
  from.consume((view) => {
    pending = to.sendAsync(view, { timeout: 5000 })
  })
  to.receiveBatch() // room
  await pending
  const all = to.receiveBatch().map(String)
  assert.equal(all[all.length - 1], 'forwarded')
})

test('messages over 4 KiB arrive in Buffers of their own; smaller ones share one copy per call', (t) => {
  const { ch } = channel(t, { capacity: 1 << 16 })
  const big = [Buffer.alloc(5000, 1), Buffer.alloc(6000, 2)]
  assert.equal(ch.sendBatch(big), 2)
  const [a, b] = ch.receiveBatch()
  assert.deepEqual([a, b], big)
  assert.notEqual(a.buffer, b.buffer)
  assert.equal(a.byteOffset, 0)
  assert.equal(a.buffer.byteLength, 5000)
  assert.equal(ch.sendBatch(['one', 'two']), 2)
  const [c, d] = ch.receiveBatch()
  assert.equal(c.buffer, d.buffer)
})

test('receiving in any form inside a consume() callback is ERR_INVALID_STATE', async (t) => {
  const { ch } = channel(t, { capacity: 4096 })
  const forms = {
    receive: () => ch.receive(),
    receiveString: () => ch.receiveString(),
    receiveBatch: () => ch.receiveBatch(),
    receiveSync: () => ch.receiveSync(0),
  }
  for (const [name, receive] of Object.entries(forms)) {
    ch.sendBatch(['a', 'b'])
    assert.throws(() => ch.consume(() => receive()), { code: 'ERR_INVALID_STATE' }, name)
    assert.equal(String(ch.receive()), 'b', `${name}: the message after the callback's stays queued`)
  }
  ch.send('c')
  let pending
  ch.consume(() => {
    pending = ch.recv()
  })
  await assert.rejects(pending, { code: 'ERR_INVALID_STATE' })
})

test('a huge or infinite timeout means no limit, never a crash', (t) => {
  const { ch } = channel(t)
  ch.send('now')
  assert.equal(String(ch.receiveSync(1e300)), 'now')
  const dir = tempDir(t)
  const obj = SharedObject.open(path.join(dir, 'v'))
  t.after(() => obj.close())
  const v = obj.version
  obj.write('x')
  assert.equal(obj.waitForChangeSync(v, 1e300), v + 1)
  assert.equal(obj.waitForChangeSync(v, Infinity), v + 1)
})

test('waits with a timeout of 1e300 ms block until the event, in another process', async (t) => {
  const dir = tempDir(t)
  const valueFile = path.join(dir, 'v')
  const obj = SharedObject.open(valueFile)
  t.after(() => obj.close())
  const { file, ch } = channel(t)
  const child = spawnFixture(t, 'wait-forever.js', [valueFile, file])
  await waitFor(() => child.lines.includes('waiting value'), 10_000, 'the value wait')
  await new Promise((resolve) => setTimeout(resolve, 50)) // let it spin and park
  obj.write('now')
  await waitFor(() => child.lines.includes('waiting channel'), 10_000, 'the channel wait')
  await new Promise((resolve) => setTimeout(resolve, 50))
  ch.send('message')
  const { code, signal } = await exitOf(child, 10_000, 'the waiter')
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, child.stderrText)
  assert.deepEqual(JSON.parse(child.lines.at(-1)), { version: 1, value: 'now', msg: 'message' })
})

test('a handle\'s messages keep their order: send() and sendAsync() wait behind earlier sendAsync() calls', async (t) => {
  const { ch } = channel(t, { capacity: 1024 })
  while (ch.send('.'));
  const pa = ch.sendAsync('A', { timeout: 10_000 })
  assert.equal(String(ch.receive()), '.') // room for one message
  const pb = ch.sendAsync('B', { timeout: 10_000 })
  assert.equal(ch.send('C'), false, 'send() does not jump the queue')
  assert.equal(ch.sendBatch(['C']), 0, 'nor does sendBatch()')
  const got = []
  const deadline = Date.now() + 10_000
  while (!got.includes('B') && Date.now() < deadline) {
    for (const m of ch.receiveBatch()) if (String(m) !== '.') got.push(String(m))
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await Promise.all([pa, pb])
  assert.deepEqual(got, ['A', 'B'])
  assert.equal(ch.send('C'), true)
})

test('messages({ timeout }) rejects with ERR_TIMEOUT when no message comes', { timeout: 10_000 }, async (t) => {
  const { ch } = channel(t)
  ch.send('first')
  const it = ch.messages({ encoding: 'utf8', timeout: 50 })
  assert.deepEqual(await it.next(), { value: 'first', done: false })
  await assert.rejects(it.next(), { code: 'ERR_TIMEOUT' })
})

test('sendBatch() with an oversize message sends the ones before it and says how many', (t) => {
  const { ch } = channel(t, { capacity: 1024 })
  assert.throws(() => ch.sendBatch(['a', 'b', 'x'.repeat(129), 'c']), (err) => err.code === 'ERR_MESSAGE_TOO_LARGE' && err.sent === 2)
  assert.deepEqual(ch.receiveBatch().map(String), ['a', 'b'])
})

test('a sendAsync() that timed out does not hold up the smaller ones queued behind it', async (t) => {
  const { ch } = channel(t, { capacity: 1024 })
  while (ch.send('.'));
  const big = ch.sendAsync(Buffer.alloc(128), { timeout: 50 })
  const small = ch.sendAsync('x', { timeout: 10_000 })
  assert.equal(ch.receiveBatch(3).length, 3) // room for 'x', not for the big one
  await assert.rejects(within(big, 10_000, 'the big send to time out'), { code: 'ERR_TIMEOUT' })
  await within(small, 15_000, 'the small send') // no more room comes: it must use the room there is
  const rest = ch.receiveBatch().map(String)
  assert.equal(rest.at(-1), 'x')
})

test('send() and sendAsync() check their message even while earlier sends wait', async (t) => {
  const { ch } = channel(t, { capacity: 1024 })
  while (ch.send('.'));
  const waiting = ch.sendAsync('A', { timeout: 10_000 })
  await assert.rejects(ch.sendAsync(null), { code: 'ERR_INVALID_ARG_TYPE' })
  await assert.rejects(ch.sendAsync(new ArrayBuffer(2)), { code: 'ERR_INVALID_ARG_TYPE' })
  await assert.rejects(ch.sendAsync(Buffer.alloc(129)), { name: 'RangeError', code: 'ERR_MESSAGE_TOO_LARGE' })
  await assert.rejects(ch.sendAsync('é'.repeat(65)), { code: 'ERR_MESSAGE_TOO_LARGE' }) // 130 UTF-8 bytes
  assert.throws(() => ch.send(Buffer.alloc(129)), { code: 'ERR_MESSAGE_TOO_LARGE' })
  assert.throws(() => ch.send('x'.repeat(1_000_000)), { code: 'ERR_MESSAGE_TOO_LARGE' })
  assert.throws(() => ch.send(42), { code: 'ERR_INVALID_ARG_TYPE' })
  while (ch.receive() !== null);
  await within(waiting, 10_000, 'the valid waiting send')
  assert.equal(ch.receiveString(), 'A', 'only the valid message was queued')
  assert.equal(ch.receive(), null)
})

test('claimConsumer({ wait: true }) rejects with ERR_CLOSED on close() and keeps nothing alive', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'chan')
  const child = spawnFixture(t, 'claim-close.js', [file])
  const { code } = await exitOf(child, 10_000, 'the process to exit once its claim was closed')
  assert.equal(code, 0, child.stderrText)
  assert.deepEqual(JSON.parse(child.lines[0]), { got: 'ERR_CLOSED' })
  // In this process: the closed handle's wait never takes the role once it frees up.
  const consumer = Channel.open(file)
  t.after(() => consumer.close())
  consumer.receive()
  const closing = Channel.open(file)
  const claim = closing.claimConsumer({ wait: true })
  closing.close()
  await assert.rejects(within(claim, 10_000, 'the closed claim to settle'), { code: 'ERR_CLOSED' })
  consumer.close()
  const next = Channel.open(file)
  t.after(() => next.close())
  await within(next.claimConsumer({ wait: true, timeout: 5_000 }), 10_000, 'the next claim')
  assert.equal(next.isConsumer, true)
})

test('encodings and descriptors are checked with the codes of the error table', (t) => {
  const { ch } = channel(t)
  assert.throws(() => ch.receive({ encoding: 'nope' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => ch.receive({ encoding: 42 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => Channel.fromFd(2 ** 32), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => Channel.fromFd('3'), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('sendBatch(): every error says in err.sent how many of the batch were sent, a wrong type after 200 valid ones included', (t) => {
  const { ch } = channel(t)
  // Enough bytes that the batch is sent in several native calls before msgs[200].
  const valid = Array.from({ length: 200 }, (_, i) => `${i}:`.padEnd(400, '.'))
  for (const bad of [42, null, Object.create(null)]) {
    assert.throws(() => ch.sendBatch([...valid, bad, 'never sent']), (err) => {
      assert.equal(err.code, 'ERR_INVALID_ARG_TYPE')
      assert.equal(err.sent, 200)
      assert.match(err.message, /msgs\[200\].*the first 200 message\(s\) of the batch were sent \(err\.sent\), none after them$/)
      return true
    })
    const got = ch.receiveBatch().map(String)
    assert.deepEqual(got, valid, 'exactly the 200 before it, in order')
  }
  assert.throws(() => ch.sendBatch('not an array'), (err) => err.code === 'ERR_INVALID_ARG_TYPE' && err.sent === 0)
  assert.equal(ch.queued, 0)
})

test('consume(): a callback that returns false leaves that message and the later ones queued', (t) => {
  const { ch } = channel(t)
  ch.sendBatch(['one', 'two', 'three'])
  const seen = []
  const taken = ch.consume((view) => {
    seen.push(String(view))
    return seen.length < 2 // refuses "two"
  })
  assert.equal(taken, 1)
  assert.deepEqual(seen, ['one', 'two'])
  assert.deepEqual(ch.receiveBatch().map(String), ['two', 'three'])
})

test('waitForMessage(): resolves once a message waits, takes nothing, and times out or aborts like recv()', async (t) => {
  const { file, ch } = channel(t)
  await assert.rejects(ch.waitForMessage({ timeout: 20 }), { code: 'ERR_TIMEOUT' })
  assert.ok(ch.isConsumer, 'waiting made it the consumer')
  const ready = ch.waitForMessage({ timeout: 20_000 })
  const producer = Channel.open(file)
  t.after(() => producer.close())
  producer.send('hello')
  await within(ready, 20_000, 'waitForMessage() to resolve')
  await within(ch.waitForMessage(), 10_000, 'a second wait to resolve at once')
  assert.equal(ch.receiveString(), 'hello', 'the message is still there')
  const ac = new AbortController()
  const aborted = ch.waitForMessage({ signal: ac.signal })
  ac.abort()
  await assert.rejects(aborted, { name: 'AbortError' })
  const closing = ch.waitForMessage()
  ch.close()
  await assert.rejects(closing, { code: 'ERR_CLOSED' })
})

test('sendBatch(): an error of the ring itself also says how many of the batch were sent', (t) => {
  const { file, ch } = channel(t, { capacity: 1024 })
  assert.equal(ch.sendBatch(['a', 'b']), 2)
  // Damage the tail (bytes claimed by producers) so that no further claim can succeed.
  const fd = fs.openSync(file, 'r+')
  const tail = Buffer.alloc(8)
  tail.writeBigUInt64LE(1n << 62n)
  fs.writeSync(fd, tail, 0, 8, 64)
  fs.closeSync(fd)
  assert.throws(() => ch.sendBatch(['c']), (err) => err.code === 'ERR_CORRUPT' && err.sent === 0)
})
