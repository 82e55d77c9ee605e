'use strict'
// SharedObject: notification, locks, growth, zero-copy buffers, anonymous segments,
// worker threads, and the coded errors around them.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const { SharedObject, Channel } = require('..')
const { tempDir, segment, spawnFixture, runFixture, waitFor, within, exitOf, FIXTURES, canUnshareMounts } = require('./helpers.js')

function forceGc() {
  require('node:v8').setFlagsFromString('--expose-gc')
  return require('node:vm').runInNewContext('gc')
}

for (const mode of ['promise', 'sync', 'watch', 'iterator']) {
  test(`a write in one process wakes a ${mode} waiter in another`, async (t) => {
    const { file, obj } = segment(t)
    const child = spawnFixture(t, 'wait-change.js', [file, mode])
    await waitFor(() => child.lines.includes('"waiting"'), 10_000, 'the waiter to start')
    obj.write(`hello ${mode}`)
    const { code } = await exitOf(child, 20_000, `the ${mode} waiter`)
    assert.equal(code, 0, child.stderrText)
    assert.deepEqual(JSON.parse(child.lines.at(-1)), { version: 1, value: `hello ${mode}` })
  })
}

test('waitForChange rejects with ERR_TIMEOUT when nothing changes', async (t) => {
  const { file } = segment(t)
  const child = spawnFixture(t, 'wait-change.js', [file, 'timeout'])
  await exitOf(child, 20_000)
  assert.deepEqual(JSON.parse(child.lines.at(-1)), { code: 'ERR_TIMEOUT' })
})

test('waitForChange rejects with an AbortError when its signal aborts', async (t) => {
  const { file } = segment(t)
  const child = spawnFixture(t, 'wait-change.js', [file, 'abort'])
  await exitOf(child, 20_000)
  assert.deepEqual(JSON.parse(child.lines.at(-1)), { name: 'AbortError', code: 'ABORT_ERR' })
})

test('waitForChange resolves at once when the version already differs', async (t) => {
  const { obj } = segment(t)
  obj.write('a')
  assert.equal(await obj.waitForChange(0), 1)
  assert.equal(obj.waitForChangeSync(0), 1)
  assert.throws(() => obj.waitForChangeSync(1, 10), { code: 'ERR_TIMEOUT' })
  const ac = new AbortController()
  ac.abort()
  await assert.rejects(obj.waitForChange(1, { signal: ac.signal }), { name: 'AbortError' })
})

test('20 pending waits do not hold up fs.readFile (they run on threads of their own)', async (t) => {
  const objs = []
  const dir = tempDir(t)
  for (let i = 0; i < 20; i++) {
    const obj = SharedObject.open(path.join(dir, `seg${i}`))
    objs.push(obj)
  }
  t.after(() => objs.forEach((o) => o.close()))
  const waits = objs.map((o) => o.waitForChange(undefined, { timeout: 30_000 }))
  // libuv's pool has 4 threads by default: 20 waits there would starve this read.
  const text = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('fs.readFile did not complete within 10 s')), 10_000)
    fs.readFile(__filename, 'utf8', (err, data) => {
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(data)
    })
  })
  assert.match(text, /20 pending waits/)
  objs.forEach((o, i) => o.write(`wake ${i}`))
  assert.deepEqual(await Promise.all(waits), Array(20).fill(1))
})

for (const mode of ['sync', 'async']) {
  test(`4 processes × 1,000 ${mode} locked increments give exactly 4,000`, async (t) => {
    const { file, obj } = segment(t)
    obj.write('0')
    const children = [0, 1, 2, 3].map(() => spawnFixture(t, 'lock-increment.js', [file, 1000, mode]))
    for (const child of children) {
      const { code } = await exitOf(child, 120_000, 'an incrementer')
      assert.equal(code, 0, child.stderrText)
    }
    assert.equal(obj.read(), '4000')
  })
}

test('a lock holder killed with SIGKILL: the next locker proceeds', async (t) => {
  const { file, obj } = segment(t)
  const holder = spawnFixture(t, 'lock-hold.js', [file])
  await waitFor(() => holder.lines.includes('locked'), 10_000, 'the holder to lock')
  assert.equal(obj.locked, true)
  assert.throws(() => obj.lockSync(() => {}, { timeout: 50 }), { code: 'ERR_TIMEOUT' })
  holder.kill('SIGKILL')
  await exitOf(holder, 10_000)
  const result = await obj.lock(() => 'got it', { timeout: 5_000 })
  assert.equal(result, 'got it')
  assert.equal(obj.locked, false, 'released after fn returned')
})

test('lock() releases on throw, and write() inside it neither deadlocks nor unlocks', async (t) => {
  const { obj } = segment(t)
  await assert.rejects(obj.lock(() => { throw new Error('boom') }), /boom/)
  assert.equal(obj.locked, false)
  const v = await obj.lock(async () => {
    obj.write('inside')
    assert.equal(obj.locked, true, 'still held after write()')
    // Re-entrant: nested sections on the same handle run at once.
    obj.lockSync(() => obj.write('nested'))
    await obj.lock(() => obj.write('nested async'))
    return obj.read()
  })
  assert.equal(v, 'nested async')
  assert.equal(obj.locked, false)
  assert.equal(obj.lockSync(() => 42), 42)
})

test('lock() sections of one handle run one at a time', async (t) => {
  const { obj } = segment(t)
  const order = []
  await Promise.all([1, 2, 3].map((i) => obj.lock(async () => {
    order.push(`start ${i}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
    order.push(`end ${i}`)
  })))
  assert.deepEqual(order, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3'])
})

test('growth while readers in other processes read continuously: nothing torn or lost', async (t) => {
  const { file, obj } = segment(t, { size: 1024 })
  const writes = 3_000
  const readers = [0, 1].map(() => spawnFixture(t, 'grow-reader.js', [file, writes]))
  for (const r of readers) await waitFor(() => r.lines.includes('ready'), 10_000, 'a reader to start')
  // Values grow from 100 bytes to ~1 MiB, so the file grows many times.
  const { make } = require('./fixtures/checked-value.js')
  for (let i = 0; i < writes; i++) obj.write(make(i, 100 + Math.floor((i / writes) * 1_000_000)))
  // (capacity is the smallest of the three slots, which need not all have grown: a slot
  // that large values skip keeps its size.)
  assert.ok(obj.capacity > 1024)
  for (const r of readers) {
    const { code } = await exitOf(r, 60_000, 'a reader')
    const summary = JSON.parse(r.lines.at(-1))
    assert.equal(code, 0, `torn: ${summary.torn}`)
    assert.equal(summary.last, writes - 1, 'the last value was seen')
    assert.ok(summary.largest >= 900_000, `the reader read the grown values (largest ${summary.largest})`)
    assert.equal(summary.capacity, obj.capacity, 'the reader adopted the new capacity')
  }
  assert.equal(fs.statSync(file).size >= 1_000_000, true)
})

test('growth beyond maxSize is ERR_VALUE_TOO_LARGE and the file never shrinks', (t) => {
  const { file, obj } = segment(t, { size: 100, maxSize: 10_000 })
  obj.write('x'.repeat(5_000))
  const grown = fs.statSync(file).size
  assert.throws(() => obj.write('y'.repeat(10_001)), { code: 'ERR_VALUE_TOO_LARGE' })
  // Beyond 64 Ki UTF-16 units a string is measured before room is made for it.
  assert.throws(() => obj.write('é'.repeat(100_000)), { name: 'RangeError', code: 'ERR_VALUE_TOO_LARGE' })
  assert.equal(obj.read(), 'x'.repeat(5_000))
  obj.write('small')
  assert.equal(fs.statSync(file).size, grown)
})

test('a zero-copy buffer written in one process is read in another, with Atomics', async (t) => {
  const { file, obj } = segment(t)
  const ints = new Int32Array(obj.buffer.buffer, obj.buffer.byteOffset, 4)
  const children = [0, 1].map(() => spawnFixture(t, 'buffer-atomics.js', [file, 50_000]))
  for (let i = 0; i < 50_000; i++) Atomics.add(ints, 0, 1)
  for (const child of children) assert.equal((await exitOf(child, 60_000)).code, 0, child.stderrText)
  assert.equal(Atomics.load(ints, 0), 150_000)
  assert.equal(Atomics.compareExchange(ints, 1, 0, 7), 0)
  assert.equal(Atomics.load(ints, 1), 7)
})

test('a zero-copy buffer stays valid after close() and after its SharedObject is collected', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  const closed = SharedObject.open(file)
  const afterClose = closed.buffer
  closed.close()
  let collectedBuffer
  let collected = new WeakRef((() => {
    const obj = SharedObject.open(file) // dropped without close()
    collectedBuffer = obj.buffer
    return obj
  })())
  const gc = forceGc()
  await waitFor(() => {
    gc()
    return collected.deref() === undefined
  }, 10_000, 'the SharedObject to be collected')
  collected = null
  gc()
  await new Promise((resolve) => setImmediate(resolve))
  afterClose.write('after close', 0)
  assert.equal(afterClose.toString('utf8', 0, 11), 'after close')
  collectedBuffer.write('after GC!!!', 0)
  const other = SharedObject.open(file)
  t.after(() => other.close())
  assert.equal(other.buffer.toString('utf8', 0, 11), 'after GC!!!', 'writes through both reach the file')
})

test('an anonymous (memfd) segment is shared with a child through stdio', async (t) => {
  const obj = SharedObject.anonymous(4096)
  t.after(() => obj.close())
  obj.write('from parent')
  const out = execFileSync(process.execPath, [path.join(FIXTURES, 'memfd-child.js')], {
    stdio: ['ignore', 'pipe', 'pipe', obj.fd],
    encoding: 'utf8',
    timeout: 20_000,
  })
  assert.equal(JSON.parse(out).got, 'from parent')
  assert.equal(obj.read(), 'child saw: from parent')
})

test('a child that opened fd 3 with fromFd() cannot take a lock its parent holds', async (t) => {
  const obj = SharedObject.anonymous(4096)
  t.after(() => obj.close())
  // Both sides share the inherited descriptor: each handle's liveness must still be its own.
  const got = await within(new Promise((resolve, reject) => {
    obj
      .lock(async () => {
        const child = spawnFixture(t, 'fd-lock.js', ['try'], { stdio: ['ignore', 'pipe', 'pipe', obj.fd] })
        const { code } = await exitOf(child, 20_000, 'the child to try the lock')
        assert.equal(code, 0, child.stderrText)
        resolve(JSON.parse(child.lines[0]).got)
      })
      .catch(reject)
  }), 30_000, 'the child to try the lock')
  assert.equal(got, 'ERR_TIMEOUT', 'the parent holds the lock: the child must wait, not take it over')
  const free = spawnFixture(t, 'fd-lock.js', ['try'], { stdio: ['ignore', 'pipe', 'pipe', obj.fd] })
  await exitOf(free, 20_000, 'the child to take the free lock')
  assert.equal(JSON.parse(free.lines[0]).got, 'locked')
})

test('a lock holder that opened an inherited fd and was killed is taken over by others', async (t) => {
  const { file, obj } = segment(t)
  // The parent keeps its descriptor open; the dead child's liveness must go with the child.
  const holder = spawnFixture(t, 'fd-lock.js', ['hold'], { stdio: ['ignore', 'pipe', 'pipe', obj.fd] })
  await waitFor(() => holder.lines.includes('locked'), 20_000, 'the child to take the lock')
  const other = SharedObject.open(file)
  t.after(() => other.close())
  assert.equal(other.locked, true)
  holder.kill('SIGKILL')
  await exitOf(holder, 10_000, 'the killed child to exit')
  assert.equal(other.lockSync(() => 'taken over', { timeout: 5_000 }), 'taken over')
})

test('fd is a descriptor of its own, opened once and closed with the handle', (t) => {
  const { file, obj } = segment(t)
  const fd = obj.fd
  assert.equal(obj.fd, fd, 'the same descriptor every time')
  assert.equal(fs.fstatSync(fd).ino, fs.statSync(file).ino)
  const other = SharedObject.fromFd(fd)
  other.write('through fromFd')
  other.close()
  assert.equal(obj.read(), 'through fromFd')
  obj.close()
  assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' })
})

test('fromFd() refuses a number that is not a file descriptor', () => {
  assert.throws(() => SharedObject.fromFd(2 ** 32 + 3), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => SharedObject.fromFd(-1), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => SharedObject.fromFd(1.5), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('worker threads open the same segment, and a write in one wakes a waiter in another', async (t) => {
  const { file, obj } = segment(t)
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads')
    const { SharedObject } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const obj = SharedObject.open(workerData)
    parentPort.postMessage('ready')
    obj.waitForChange(0, { timeout: 20000 }).then((v) => {
      parentPort.postMessage({ v, value: obj.read() })
      obj.write('from worker')
      obj.close()
    })
  `, { eval: true, workerData: file })
  t.after(() => worker.terminate())
  const messages = []
  worker.on('message', (m) => messages.push(m))
  await waitFor(() => messages.includes('ready'), 10_000, 'the worker to start')
  const next = obj.waitForChange(0, { timeout: 20_000 })
  obj.write('from main')
  await waitFor(() => messages.length === 2, 20_000, 'the worker to see the write')
  assert.deepEqual(messages[1], { v: 1, value: 'from main' })
  await waitFor(() => obj.version === 2, 10_000, 'the worker to write')
  assert.ok((await next) >= 1, 'the main thread waiter woke too')
  assert.equal(obj.read(), 'from worker')
})

test('an active watcher keeps the process alive; { ref: false } does not', async (t) => {
  const { file, obj } = segment(t)
  const kept = spawnFixture(t, 'watch-forever.js', [file])
  const loose = spawnFixture(t, 'watch-forever.js', [file, 'unref'])
  const { code } = await exitOf(loose, 10_000, 'the unref watcher to exit')
  assert.equal(code, 0)
  assert.ok(loose.lines.includes('exiting'))
  await waitFor(() => kept.lines.includes('watching'), 10_000, 'the watcher to start')
  obj.write('seen by the watcher')
  await waitFor(() => kept.lines.some((l) => l.includes('seen by the watcher')), 10_000, 'the watcher to print')
  assert.equal(kept.exitCode, null, 'still running')
})

test('watch(): a change whose value cannot be read goes to onError, and the watcher goes on', async (t) => {
  const { file, obj } = segment(t)
  obj.write('ok')
  const errors = []
  const seen = []
  const stop = obj.watch((value) => seen.push(value), { onError: (err) => errors.push(err.code) })
  t.after(stop)
  damageHeader(file)
  await waitFor(() => errors.length > 0, 10_000, 'onError')
  obj.write('repaired')
  await waitFor(() => seen.length > 0, 10_000, 'the listener after the repair')
  // Once, however many wake-ups found that state (the notifier's first call and the
  // change's own call may both run).
  assert.deepEqual(errors, ['ERR_CORRUPT'])
  assert.deepEqual(seen, ['repaired'])
  assert.throws(() => obj.watch(() => {}, { onError: 'no' }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('watch(): a state already unreadable when watching began is not a change', async (t) => {
  const { file, obj } = segment(t)
  obj.write('ok')
  damageHeader(file)
  const errors = []
  const seen = []
  // The notifier's first call finds the damaged state; it is not reported.
  const stop = obj.watch((value) => seen.push(value), { onError: (err) => errors.push(err.code) })
  t.after(stop)
  await new Promise((resolve) => setTimeout(resolve, 100)) // let that first call run
  assert.deepEqual(errors, [])
  obj.write('repaired')
  await waitFor(() => seen.length > 0, 10_000, 'the listener after the repair')
  assert.deepEqual(errors, [])
  assert.deepEqual(seen, ['repaired'])
})

// What another process could leave: a header whose length cannot be (version 2, an
// impossible length) and a bumped futex word, written through the file, not the mapping.
function damageHeader(file) {
  const fd = fs.openSync(file, 'r+')
  try {
    const word = Buffer.alloc(8)
    word.writeBigUInt64LE(0xffff_ffffn)
    fs.writeSync(fd, word, 0, 8, 72) // len
    word.writeBigUInt64LE(4n)
    fs.writeSync(fd, word, 0, 8, 64) // seq: even, version 2
    const notify = Buffer.alloc(4)
    fs.readSync(fd, notify, 0, 4, 136)
    notify.writeUInt32LE(notify.readUInt32LE(0) + 1)
    fs.writeSync(fd, notify, 0, 4, 136)
  } finally {
    fs.closeSync(fd)
  }
}

test('watch(): a listener that throws does not take the change from the other watchers', async (t) => {
  const { file } = segment(t)
  const { code, stdout, stderr } = await runFixture(t, 'watch-throws.js', [file])
  assert.equal(code, 0, stderr)
  assert.deepEqual(JSON.parse(stdout), { second: 'changed', uncaught: 'listener failed' })
})

test('changes(): delivers the changes after the call, and ends when the handle closes', async (t) => {
  const { obj } = segment(t)
  obj.write('before')
  const changes = obj.changes()
  obj.write('between the call and the first next()')
  const first = await within(changes.next(), 10_000, 'the first change')
  assert.deepEqual(first, { done: false, value: { value: 'between the call and the first next()', version: 2 } })
  const second = changes.next()
  obj.close()
  assert.deepEqual(await within(second, 10_000, 'the end of the iteration'), { done: true, value: undefined })
  assert.throws(() => obj.changes(), { code: 'ERR_CLOSED' })
})

test('lock(): close() rejects a pending lock() with ERR_CLOSED, and its section never runs', async (t) => {
  const { file, obj } = segment(t)
  const other = SharedObject.open(file)
  t.after(() => other.close())
  let release
  const held = obj.lock(() => new Promise((resolve) => (release = resolve)))
  await waitFor(() => release, 10_000, 'the first section to start')
  let ran = false
  const queuedNative = other.lock(() => {
    ran = true
  })
  await new Promise((resolve) => setTimeout(resolve, 50)) // let it wait in the kernel
  other.close()
  await assert.rejects(within(queuedNative, 10_000, 'the pending lock() to settle'), { code: 'ERR_CLOSED' })
  release()
  await held
  assert.equal(ran, false)
  const third = SharedObject.open(file)
  t.after(() => third.close())
  assert.equal(third.lockSync(() => 'free', { timeout: 5_000 }), 'free', 'the closed handle did not keep the lock')
})

test('lock(): the timeout also counts the wait behind the same handle\'s earlier section', async (t) => {
  const { obj } = segment(t)
  let release
  const first = obj.lock(() => new Promise((resolve) => (release = resolve)))
  await waitFor(() => release, 10_000, 'the first section to start')
  let ran = false
  const second = obj.lock(() => (ran = true), { timeout: 20 })
  await assert.rejects(within(second, 10_000, 'the second lock() to time out'), { code: 'ERR_TIMEOUT' })
  const third = obj.lock(() => 'third') // still waits its turn behind the first
  release()
  await first
  assert.equal(await within(third, 10_000, 'the third section'), 'third')
  assert.equal(ran, false)
})

test('lock(): close() ends a lock() queued behind the same handle, and nothing it armed keeps the process alive', (t) => {
  const dir = tempDir(t)
  const script = `
    const { SharedObject } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const a = SharedObject.open(process.argv[1])
    a.lock(() => new Promise(() => {})) // holds the lock for good
    a.lock(() => {}, { timeout: 600000 }).catch((err) => console.log(err.code))
    setTimeout(() => a.close(), 50)
  `
  // Before, the queued lock's timer kept the process alive until its timeout (10 minutes).
  const out = execFileSync(process.execPath, ['-e', script, path.join(dir, 'seg')], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(out.trim(), 'ERR_CLOSED')
})

test('where external buffers are refused (Electron), a SharedObject still reads, writes and waits', (t) => {
  const dir = tempDir(t)
  // Stands in for Electron's memory cage: the binding refuses the header view as it would.
  const script = `
    const native = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'native.js'))})
    native.valueHeader = () => {
      throw Object.assign(new Error('external buffers are not allowed'), { code: 'ERR_EXTERNAL_BUFFER_UNSUPPORTED' })
    }
    const { SharedObject } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const a = SharedObject.open(process.argv[1])
    const b = SharedObject.open(process.argv[1])
    const seen = []
    const stop = b.watch((value, version) => seen.push([value, version]))
    const next = b.waitForChange(0, { timeout: 10000 })
    a.write('one')
    const first = b.read()
    a.write('two')
    next.then(async (v) => {
      const until = Date.now() + 10000
      while (seen.length === 0 || seen.at(-1)[1] !== 2) {
        if (Date.now() > until) throw new Error('the watcher saw ' + JSON.stringify(seen))
        await new Promise((r) => setTimeout(r, 5))
      }
      stop()
      console.log(JSON.stringify({ first, second: b.read(), version: b.version, waited: v >= 1, last: seen.at(-1) }))
    })
  `
  const out = execFileSync(process.execPath, ['-e', script, path.join(dir, 'seg')], { encoding: 'utf8', timeout: 20_000 })
  assert.deepEqual(JSON.parse(out), { first: 'one', second: 'two', version: 2, waited: true, last: ['two', 2] })
})

test('a read-only handle refuses writes with ERR_READ_ONLY', (t) => {
  const { file, obj } = segment(t)
  obj.write('fixed')
  const ro = SharedObject.open(file, { readOnly: true })
  t.after(() => ro.close())
  assert.equal(ro.readOnly, true)
  assert.equal(ro.read(), 'fixed')
  assert.throws(() => ro.write('no'), { code: 'ERR_READ_ONLY' })
  assert.throws(() => ro.buffer, { code: 'ERR_READ_ONLY' })
  assert.throws(() => ro.lockSync(() => {}), { code: 'ERR_READ_ONLY' })
  assert.equal(obj.read(), 'fixed')
})

test('a read-only handle can wait for and watch changes (it polls: it cannot announce itself)', async (t) => {
  const { file, obj } = segment(t)
  const ro = SharedObject.open(file, { readOnly: true })
  t.after(() => ro.close())
  const next = ro.waitForChange(0, { timeout: 10_000 })
  const seen = []
  const stop = ro.watch((value) => seen.push(value))
  t.after(stop)
  await assert.rejects(ro.lock(() => {}), { code: 'ERR_READ_ONLY' })
  obj.write('changed')
  assert.equal(await next, 1)
  await waitFor(() => seen.includes('changed'), 10_000, 'the read-only watcher')
  assert.throws(() => ro.waitForChangeSync(1, 5), { code: 'ERR_TIMEOUT' })
})

test('another format version is ERR_UNSUPPORTED_VERSION', (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  SharedObject.open(file).close()
  const bytes = fs.readFileSync(file)
  bytes.writeUInt32LE(99, 8)
  fs.writeFileSync(file, bytes)
  assert.throws(() => SharedObject.open(file), (err) => err.code === 'ERR_UNSUPPORTED_VERSION' && err.message.includes(file))
})

test('use after close() is ERR_CLOSED and pending waits reject with it', async (t) => {
  const { obj } = segment(t)
  const pending = obj.waitForChange()
  obj.close()
  await assert.rejects(pending, { code: 'ERR_CLOSED' })
  assert.throws(() => obj.read(), { code: 'ERR_CLOSED' })
  assert.throws(() => obj.write('x'), { code: 'ERR_CLOSED' })
  assert.throws(() => obj.version, { code: 'ERR_CLOSED' })
  obj.close()
})

test('options are validated with coded errors', (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  assert.throws(() => SharedObject.open(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => SharedObject.open(''), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => SharedObject.open('a\0b'), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => SharedObject.open(file, { size: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => SharedObject.open(file, { size: 'big' }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => SharedObject.open(file, { create: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => SharedObject.open(file, { size: 10, maxSize: 5 }), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => SharedObject.open(file, { maxSize: 2 ** 40 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => SharedObject.anonymous({ size: 2 ** 39 + 1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => SharedObject.open(file, { create: false }), { code: 'ERR_NOT_FOUND' })
  assert.equal(fs.existsSync(file), false)
})

test('ENOSPC on a tiny tmpfs is a coded error at create or grow time, never a bus error', async (t) => {
  if (!(await canUnshareMounts())) {
    t.skip('unshare -m is not available here (needs root or user namespaces)')
    return
  }
  const dir = tempDir(t)
  const script = path.join(dir, 'enospc.js')
  fs.writeFileSync(script, `
    const { SharedObject } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const mnt = ${JSON.stringify(path.join(dir, 'mnt'))}
    const out = {}
    try { SharedObject.open(mnt + '/big', { size: 1 << 20 }); out.create = 'ok' } catch (e) { out.create = e.code }
    const small = SharedObject.open(mnt + '/small', { size: 1024 })
    small.write('kept')
    try { small.write('x'.repeat(300 * 1024)); out.grow = 'ok' } catch (e) { out.grow = e.code }
    out.after = small.read()
    out.files = require('fs').readdirSync(mnt).sort()
    console.log(JSON.stringify(out))
  `)
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(mnt)
  const out = execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" "$3"', 'sh', mnt, process.execPath, script], { encoding: 'utf8', timeout: 30_000 })
  const result = JSON.parse(out.trim().split('\n').at(-1))
  assert.deepEqual(result, { create: 'ENOSPC', grow: 'ENOSPC', after: 'kept', files: ['small'] })
})

test('SharedObject.unlink() removes segments of every kind and refuses anything else, which it leaves as it was', (t) => {
  const dir = tempDir(t)
  const value = path.join(dir, 'value')
  const chan = path.join(dir, 'chan')
  SharedObject.open(value).close()
  Channel.open(chan).close()
  const foreign = path.join(dir, 'foreign')
  fs.writeFileSync(foreign, 'somebody else\'s data', { mode: 0o600 })
  const empty = path.join(dir, 'empty')
  fs.writeFileSync(empty, '', { mode: 0o600 })
  const link = path.join(dir, 'link')
  fs.symlinkSync(value, link)
  const sub = path.join(dir, 'sub')
  fs.mkdirSync(sub)
  for (const file of [foreign, empty, link, sub]) {
    assert.throws(() => SharedObject.unlink(file), (err) => {
      assert.equal(err.code, 'ERR_NOT_A_SEGMENT', file)
      assert.ok(err.message.includes(file), err.message)
      return true
    })
  }
  assert.equal(fs.readFileSync(foreign, 'utf8'), 'somebody else\'s data')
  assert.equal(fs.readlinkSync(link), value, 'the symlink is still there')
  assert.ok(fs.statSync(empty).isFile() && fs.statSync(sub).isDirectory())
  SharedObject.unlink(value)
  SharedObject.unlink(chan)
  assert.deepEqual(fs.readdirSync(dir).sort(), ['empty', 'foreign', 'link', 'sub'])
  assert.throws(() => SharedObject.unlink(value), { code: 'ERR_NOT_FOUND' })
})

test('an open handle keeps working on a segment SharedObject.unlink() removed', (t) => {
  const { file, obj } = segment(t)
  obj.write('before')
  SharedObject.unlink(file)
  assert.equal(fs.existsSync(file), false)
  obj.write('after')
  assert.equal(obj.read(), 'after')
})

for (const kind of ['change', 'lock', 'receive']) {
  const wait = { change: 'waitForChangeSync()', lock: 'lockSync()', receive: 'receiveSync()' }[kind]
  for (const how of ['terminate', 'exit']) {
    const ending = how === 'terminate' ? 'worker.terminate()' : 'process.exit() in the main thread'
    test(`${ending} ends a worker parked in ${wait} without a timeout`, async (t) => {
      const dir = tempDir(t)
      const child = spawnFixture(t, 'parked-worker.js', [kind, how, path.join(dir, 'seg')])
      // Before, the worker could not be stopped: terminate() never resolved and exit() hung.
      const { code, signal } = await exitOf(child, 20_000, `the process to end after ${ending}`)
      assert.deepEqual([code, signal], [0, null], child.stderrText)
      assert.deepEqual(child.lines, how === 'terminate' ? ['parked', 'terminated'] : ['parked'])
    })
  }
}

test('capacity and buffer follow a growth made by another process', async (t) => {
  const { file, obj } = segment(t)
  const before = obj.buffer
  const beforeLength = before.length
  assert.ok(obj.capacity >= 1024 && beforeLength >= obj.capacity)
  const w = await runFixture(t, 'write-once.js', ['x'.repeat(100_000)], { env: { ...process.env, SHARE_OBJECT_PATH: file } })
  assert.equal(w.code, 0, w.stderr)
  // No read in between: the getters alone must see the larger segment (the value is in a
  // grown slot: buffer covers it whole; capacity is what every handle reports).
  const fresh = SharedObject.open(file)
  t.after(() => fresh.close())
  assert.equal(obj.capacity, fresh.capacity)
  assert.ok(obj.buffer.length >= 100_000, `buffer ${obj.buffer.length}`)
  assert.equal(obj.buffer.subarray(0, 3).toString(), 'xxx')
  assert.equal(before.length, beforeLength, 'a Buffer taken before keeps covering the area it covered')
})

test('lock timeouts name the timeout given, exactly: lock(), lockSync() and claimConsumer()', async (t) => {
  const { file, obj } = segment(t)
  const holder = SharedObject.open(file)
  t.after(() => holder.close())
  let release
  const held = holder.lock(() => new Promise((resolve) => (release = resolve)))
  await waitFor(() => obj.locked, 10_000, 'the other handle to hold the lock')
  assert.throws(() => obj.lockSync(() => {}, { timeout: 50 }), (err) => {
    assert.equal(err.code, 'ERR_TIMEOUT')
    assert.equal(err.message, `${file}: timed out after 50 ms waiting for the lock`)
    return true
  })
  // Time spent behind this handle's own earlier lock() takes part of the timeout; the
  // native wait then gets what is left (it was reported, as 30 ms of 50 here): the message
  // still names all of it.
  const earlier = obj.lock(() => {}, { timeout: 20 })
  const queued = obj.lock(() => {}, { timeout: 50 })
  await assert.rejects(within(earlier, 10_000, 'the earlier lock() to time out'), { code: 'ERR_TIMEOUT' })
  await assert.rejects(within(queued, 10_000, 'the queued lock() to time out'), (err) => {
    assert.equal(err.code, 'ERR_TIMEOUT')
    assert.equal(err.message, `${file}: timed out after 50 ms waiting for the lock`)
    return true
  })
  release()
  await held
  const dir = tempDir(t)
  const consumer = Channel.open(path.join(dir, 'chan'))
  const other = Channel.open(path.join(dir, 'chan'))
  t.after(() => [consumer.close(), other.close()])
  await consumer.claimConsumer()
  await assert.rejects(within(other.claimConsumer({ wait: true, timeout: 50 }), 10_000, 'the claim to time out'), (err) => {
    assert.equal(err.code, 'ERR_TIMEOUT')
    assert.equal(err.message, `${path.join(dir, 'chan')}: timed out after 50 ms waiting for the consumer role`)
    return true
  })
})

test('argument errors of a handle name its path', (t) => {
  const { file, obj } = segment(t)
  const cases = [
    () => obj.write(new Map()),
    () => obj.waitForChangeSync(-1),
    () => obj.lockSync('not a function'),
    () => obj.watch(() => {}, { onError: 1 }),
    () => SharedObject.open(file, { size: -1 }),
  ]
  for (const f of cases) {
    assert.throws(f, (err) => {
      assert.match(err.code, /^ERR_/)
      assert.ok(err.message.startsWith(`${file}: `), err.message)
      return true
    })
  }
})

test('arguments that cannot be converted to a string still get coded errors, and a detached view is refused everywhere', async (t) => {
  const { obj } = segment(t)
  const { ch } = require('./helpers.js').channel(t)
  const revoked = Proxy.revocable({}, {})
  revoked.revoke()
  const detached = new Uint8Array(new ArrayBuffer(8))
  structuredClone(detached.buffer, { transfer: [detached.buffer] })
  const hostile = [
    Object.create(null),
    revoked.proxy,
    new Proxy({}, { get: () => { throw new Error('a trap') }, getPrototypeOf: () => { throw new Error('a trap') } }),
    { toString: () => { throw new Error('no string') }, [Symbol.toPrimitive]: () => { throw new Error('no primitive') } },
    Symbol('s'),
    10n,
  ]
  const calls = (v) => [
    () => obj.write(v),
    () => obj.waitForChangeSync(v, 0),
    () => obj.waitForChangeSync(undefined, v),
    () => obj.lockSync(v),
    () => obj.lockSync(() => {}, v),
    () => obj.watch(v),
    () => SharedObject.open(v),
    () => SharedObject.anonymous(v),
    () => ch.send(v),
    () => ch.sendBatch(v),
    () => ch.sendBatch(['ok', v]),
    () => ch.receive(v),
    () => ch.receiveBatch(v),
    () => ch.receiveSync(v),
    () => ch.consume(v),
    () => ch.consume(() => {}, v),
    () => Channel.open(v),
  ]
  // A message waits before recv() and waitForMessage(): with options they accept, they
  // settle at once rather than wait.
  const withMessage = (f) => () => {
    if (ch.queued === 0) ch.send('waiting')
    return f()
  }
  const asyncCalls = (v) => [() => obj.waitForChange(v), () => obj.lock(() => {}, v), withMessage(() => ch.recv(v)), () => ch.sendAsync(v), withMessage(() => ch.waitForMessage(v))]
  for (const v of hostile) {
    for (const f of calls(v)) {
      let thrown = null
      try {
        f()
      } catch (err) {
        thrown = err
      }
      if (thrown) assert.match(String(thrown.code), /^ERR_/, `${f}: ${thrown.stack}`)
    }
    for (const f of asyncCalls(v)) {
      const err = await f().then(() => null, (e) => e)
      if (err) assert.match(String(err.code), /^ERR_/, `${f}: ${err.stack}`)
    }
  }
  // (Plain objects, an object without a prototype included, are values the default codec
  // stores as JSON: those writes counted.)
  const version = obj.version
  // A detached view's bytes are gone: refused alike by every writer, and nothing is sent.
  for (const f of [() => ch.send(detached), () => ch.sendBatch([detached]), () => obj.write(detached)]) {
    assert.throws(f, { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
  }
  ch.receiveBatch() // what the calls above left waiting
  await assert.rejects(ch.sendAsync(detached), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.equal(ch.queued, 0)
  assert.equal(obj.version, version, 'nothing was written')
})
