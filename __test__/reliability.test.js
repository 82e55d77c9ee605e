'use strict'
// Reliability and security (issue #6): what must hold under faults, load and hostile
// input, with real processes. Each test names what it asserts; the Rust side of the same
// issue (fuzzing, model checking) is src/hostile_tests.rs.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { SharedObject, Channel } = require('..')
const { tempDir, segment, channel, spawnFixture, waitFor, exitOf, runFixture, FIXTURES, canUnshareMounts } = require('./helpers.js')
const { makeValue, checkValue, HEAD } = require('./fixtures/rel-common.js')
const { readHeader, fillsInProgress } = require('./fixtures/format2.js')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const jsonLines = (child) => child.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
const lastJson = (child) => jsonLines(child).at(-1)

/** Resolves when the child has printed `line`. */
function printed(child, line, ms, what) {
  return waitFor(() => child.lines.includes(line), ms, `${what} to print ${JSON.stringify(line)}; stderr: ${child.stderrText}`)
}

/** Runs a fixture that must exit by itself with code 0; returns its last JSON line. */
async function finished(child, ms, what) {
  const { code, signal } = await exitOf(child, ms, what)
  assert.equal(signal, null, `${what} was killed by ${signal}; stderr: ${child.stderrText}`)
  assert.equal(code, 0, `${what} exited with ${code}: ${child.lines.at(-1)} ${child.stderrText}`)
  return lastJson(child)
}

// ---------------------------------------------------------------------------------------
// 1. Writer killed mid-write
// ---------------------------------------------------------------------------------------

test('a writer SIGKILLed at random moments, 200 times, writing values of 1 KiB and 1 MiB: readers never see a torn value nor hang, and no committed value is lost', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  const stop = path.join(dir, 'stop')
  const progressFile = path.join(dir, 'progress')
  const ROUNDS = 200
  const [small, large] = [1 << 10, 1 << 20]
  const obj = SharedObject.open(file, { size: large + HEAD })
  t.after(() => obj.close())
  obj.write(makeValue(1, 0, 100))
  // Each writer stores the seq of every write that returned here (Atomics on `buffer`).
  const progressSegment = SharedObject.open(progressFile, { size: 64 })
  t.after(() => progressSegment.close())
  const view = progressSegment.buffer
  const progress = new BigInt64Array(view.buffer, view.byteOffset, 1)
  // Two reader processes read and check every value for the whole run.
  const readers = [0, 1].map(() => spawnFixture(t, 'rel-reader.js', [file, stop, 'until-stop']))
  for (const r of readers) await printed(r, 'ready', 20_000, 'a reader')
  const progressOf = (r) => jsonLines(r).filter((m) => m.progress !== undefined).at(-1)?.progress ?? 0

  // Writers are started three rounds ahead and held until told to go, so that starting
  // Node does not stretch every round.
  const writer = (round) =>
    spawnFixture(t, 'rel-writer.js', [file, 1, 'forever', small, 'or', large, round * 1_000_000, 'wait', progressFile])
  const armed = [0, 1, 2].map(writer)
  const outcomes = { inFlightLost: 0, committedBeforeReport: 0, between: 0 }
  const readerReads = readers.map(progressOf)
  for (let round = 0; round < ROUNDS; round++) {
    const current = armed.shift()
    await printed(current, 'armed', 20_000, `writer ${round}`)
    current.stdin.write('go\n')
    await printed(current, 'ready', 20_000, `writer ${round}`)
    if (round + 3 < ROUNDS) armed.push(writer(round + 3))
    // The previous writer was killed: this one took the segment over, and reads are whole.
    const { seq } = checkValue(obj.readBuffer())
    assert.ok(seq >= round * 1_000_000, `round ${round}: read seq ${seq} of an older writer after the new one wrote`)
    const from = obj.version
    await waitFor(() => obj.version >= from + 2, 20_000, `writer ${round} to keep writing`)
    await sleep(Math.floor(Math.random() * 12))
    current.kill('SIGKILL')
    await exitOf(current, 10_000, `writer ${round} to die`)
    // Right after the kill: the value is whole, and it is the last write that returned or
    // the one in flight (committed before the writer could report it), never an older one.
    const returned = Number(Atomics.load(progress, 0))
    const header = readHeader(file)
    const value = checkValue(obj.readBuffer())
    assert.equal(value.writer, 1)
    assert.ok(value.seq === returned || value.seq === returned + 1, `round ${round}: after the kill the value is seq ${value.seq}; the last write that returned was ${returned}`)
    // A slot being filled for the next commit is the write the kill interrupted: it is lost,
    // and only it.
    const inFlight = header.slots.some((s) => (s.seq & 1n) === 1n && s.commit === header.commit + 1n)
    if (inFlight) {
      assert.equal(value.seq, returned, `round ${round}: a write was in flight, yet the value is not the last one that returned`)
      outcomes.inFlightLost++
    } else if (value.seq === returned + 1) {
      outcomes.committedBeforeReport++
    } else {
      outcomes.between++
    }
    if (round % 25 === 24) {
      // The readers are alive and reading (a hung read would stop their progress).
      for (const [i, r] of readers.entries()) {
        const before = readerReads[i]
        await waitFor(() => progressOf(r) > before, 20_000, `reader ${i} to keep reading (round ${round})`)
        readerReads[i] = progressOf(r)
        assert.equal(r.exitCode, null, `reader ${i} exited: ${r.lines.at(-1)}`)
      }
    }
  }
  fs.writeFileSync(stop, '')
  const summaries = []
  for (const r of readers) summaries.push(await finished(r, 30_000, 'a reader'))
  for (const s of summaries) assert.ok(s.whole > 0 && s.whole === s.reads, `a reader accepted no value, or not every read was whole: ${JSON.stringify(s)}`)
  t.diagnostic(`${ROUNDS} writers killed: ${JSON.stringify(outcomes)}; readers: ${JSON.stringify(summaries)}`)
  assert.ok(outcomes.inFlightLost > 0, 'no writer was ever killed in the middle of a write: the test did not exercise that case')
})

// ---------------------------------------------------------------------------------------
// 2. Lock holder killed
// ---------------------------------------------------------------------------------------

for (const mode of ['async', 'sync']) {
  test(`a ${mode} lock holder SIGKILLed, 8 times: the next lock() and a waiter in another process get the lock with { timeout: 1000 }`, async (t) => {
    const { file, obj } = segment(t)
    for (let round = 0; round < 8; round++) {
      const holder = spawnFixture(t, 'rel-lock-holder.js', [file, mode])
      await printed(holder, 'locked', 20_000, 'the holder')
      assert.equal(obj.locked, true)
      const waiter = spawnFixture(t, 'rel-lock-waiter.js', [file, 1000])
      await printed(waiter, 'waiting', 20_000, 'the waiter')
      // Both wait while the holder lives, then the holder dies.
      const mine = obj.lock(() => obj.read(), { timeout: 1000 })
      await sleep(Math.floor(Math.random() * 20))
      holder.kill('SIGKILL')
      await exitOf(holder, 10_000, 'the holder to die')
      await mine // rejects with ERR_TIMEOUT if the lock did not come within 1000 ms
      assert.deepEqual(await finished(waiter, 20_000, 'the waiter'), { ok: true })
      assert.equal(obj.lockSync(() => 'again', { timeout: 1000 }), 'again')
      assert.equal(obj.locked, false)
    }
  })
}

// ---------------------------------------------------------------------------------------
// 3. Waker killed
// ---------------------------------------------------------------------------------------

const WAIT_MODES = ['sync', 'promise', 'watch', 'iterator']

test('a writer that dies between its update and its wake: waiters return by their timeout, never with stale data', async (t) => {
  const { file, obj } = segment(t)
  obj.write('old value')
  const v0 = obj.version
  const waiters = WAIT_MODES.map((mode) => spawnFixture(t, 'rel-waiter.js', [file, mode, 1500]))
  for (const w of waiters) await printed(w, 'waiting', 20_000, 'a waiter')
  const here = obj.waitForChange(v0, { timeout: 1500 }).then((version) => ({ version }), (err) => ({ code: err.code }))
  const notify = () => fs.readFileSync(file).readUInt32LE(136)
  const notifyBefore = notify()
  const silent = await runFixture(t, 'rel-silent-writer.js', [file, 'new value', 'complete'])
  assert.equal(silent.signal, 'SIGKILL', 'the writer died before waking anyone')
  assert.equal(notify(), notifyBefore, 'nobody bumped the notify word')
  for (const [i, w] of waiters.entries()) {
    const result = await finished(w, 20_000, `the ${WAIT_MODES[i]} waiter`)
    if (result.code !== undefined) {
      assert.deepEqual(result, { code: 'ERR_TIMEOUT', after: 'new value' }, WAIT_MODES[i])
    } else {
      assert.deepEqual(result, { version: v0 + 1, value: 'new value' }, WAIT_MODES[i])
    }
  }
  const mine = await here
  assert.ok(mine.version === v0 + 1 || mine.code === 'ERR_TIMEOUT', JSON.stringify(mine))
  assert.equal(obj.read(), 'new value')
  assert.equal(obj.version, v0 + 1)
  t.diagnostic(`waiters: ${waiters.map((w) => w.lines.at(-1)).join(' ')} here: ${JSON.stringify(mine)}`)
})

test('a writer killed mid-write before its wake: waiters time out, reads keep the old value, and the next write wakes everyone', async (t) => {
  const { file, obj } = segment(t)
  obj.write('old value')
  const v0 = obj.version
  // The writer is started first, so that its torn write lands well within the waiters'
  // timeouts however slowly a process starts.
  const writer = spawnFixture(t, 'rel-silent-writer.js', [file, 'half of a new val', 'torn', 'wait'])
  await printed(writer, 'ready', 20_000, 'the writer')
  const waiters = WAIT_MODES.map((mode) => spawnFixture(t, 'rel-waiter.js', [file, mode, 1500]))
  for (const w of waiters) await printed(w, 'waiting', 20_000, 'a waiter')
  writer.stdin.write('go\n')
  const torn = await exitOf(writer, 10_000, 'the torn writer')
  assert.equal(torn.signal, 'SIGKILL')
  assert.equal(fillsInProgress(file), 1, 'the writer died in the middle of its fill')
  for (const [i, w] of waiters.entries()) {
    assert.deepEqual(await finished(w, 20_000, 'a waiter'), { code: 'ERR_TIMEOUT', after: 'old value' }, WAIT_MODES[i])
  }
  const fresh = SharedObject.open(file) // no cache: a read from the file
  assert.equal(fresh.read(), 'old value', 'the last commit is still whole')
  fresh.close()
  assert.equal(obj.version, v0, 'a write that never committed is not a version')
  // The next writer takes the dead writer's lock over; waiters see its value.
  const late = WAIT_MODES.map((mode) => spawnFixture(t, 'rel-waiter.js', [file, mode, 20_000]))
  for (const w of late) await printed(w, 'waiting', 20_000, 'a waiter')
  const other = SharedObject.open(file)
  other.write('recovered')
  other.close()
  const v1 = obj.version
  assert.equal(v1, v0 + 1, 'version counts commits: the dead write is not one')
  for (const [i, w] of late.entries()) {
    assert.deepEqual(await finished(w, 20_000, 'a waiter'), { version: v1, value: 'recovered' }, WAIT_MODES[i])
  }
  assert.equal(obj.read(), 'recovered')
})

// ---------------------------------------------------------------------------------------
// 4. Load
// ---------------------------------------------------------------------------------------

test('4 writer and 4 reader processes × 100,000 operations on values of 24 B to 64 KiB: zero failures', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  const stop = path.join(dir, 'stop')
  const OPS = 100_000
  const obj = SharedObject.open(file, { size: 64 << 10 })
  t.after(() => obj.close())
  obj.write(makeValue(9, 0, 10))
  // Readers read until the writers are done, and at least 100,000 times each.
  const readers = [0, 1, 2, 3].map(() => spawnFixture(t, 'rel-reader.js', [file, stop, `min:${OPS}`]))
  for (const r of readers) await printed(r, 'ready', 20_000, 'a reader')
  const writers = [1, 2, 3, 4].map((id) => spawnFixture(t, 'rel-writer.js', [file, id, OPS, 0, (64 << 10) - HEAD]))
  for (const w of writers) assert.deepEqual(await finished(w, 170_000, 'a writer'), { done: OPS })
  fs.writeFileSync(stop, '')
  const summaries = []
  for (const r of readers) summaries.push(await finished(r, 170_000, 'a reader'))
  for (const s of summaries) {
    assert.ok(s.reads >= OPS, `only ${s.reads} reads`)
    assert.equal(s.whole, s.reads, 'every read returned a whole, checked value')
  }
  assert.equal(obj.version, 1 + 4 * OPS)
  const last = checkValue(obj.readBuffer())
  assert.ok(last.writer >= 1 && last.writer <= 4 && last.seq === OPS - 1, JSON.stringify(last))
  t.diagnostic(`reads: ${summaries.map((s) => s.reads).join(', ')}; readers saw values from ${summaries.map((s) => s.writers).join('/')} writers`)
})

test('4 producers and a consumer SIGKILLed and replaced 3 times mid-run: no message twice or out of order, only a dying consumer\'s batch may be lost', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'chan')
  const stop = path.join(dir, 'stop')
  const PER = 100_000
  const BATCH = 64
  const KILLS = 3
  const ch = Channel.open(file, { capacity: 1 << 16 })
  t.after(() => ch.close())
  const consumers = []
  const startConsumer = async () => {
    const c = spawnFixture(t, 'rel-consumer.js', [file, stop, BATCH])
    consumers.push(c)
    await printed(c, 'ready', 20_000, 'a consumer')
    return c
  }
  const received = (c) => c.lines.reduce((n, l) => (l.startsWith('B ') ? n + l.split(' ').length - 1 : n), 0)
  let consumer = await startConsumer()
  // A producer waits at most 10 s for room: a consumer is always there within that.
  const producers = [1, 2, 3, 4].map((id) => spawnFixture(t, 'rel-producer.js', [file, id, PER, 10_000]))
  let total = 0
  for (let k = 0; k < KILLS; k++) {
    // Kill at about 20 %, 45 % and 70 % of the run, at a moment that varies.
    const target = Math.floor(((k + 1) * 0.25 - 0.05) * 4 * PER) - total
    await waitFor(() => received(consumer) >= target, 120_000, `consumer ${k} to receive ${target} messages`)
    await sleep(Math.floor(Math.random() * 5))
    consumer.kill('SIGKILL')
    await exitOf(consumer, 10_000, 'the consumer to die')
    total += received(consumer)
    consumer = await startConsumer()
  }
  for (const p of producers) assert.deepEqual(await finished(p, 170_000, 'a producer'), { done: PER })
  fs.writeFileSync(stop, '')
  await finished(consumer, 60_000, 'the last consumer')

  // Account for every message: consumers ran one after the other, so their records in order
  // are the order of delivery.
  const seen = new Set()
  const last = new Map()
  const perConsumer = consumers.map((c) => {
    const pairs = []
    for (const line of c.lines) {
      if (!line.startsWith('B ')) continue
      for (const pair of line.slice(2).split(' ')) {
        const [p, s] = pair.split(':').map(Number)
        const key = `${p}:${s}`
        assert.ok(!seen.has(key), `message ${key} delivered twice`)
        seen.add(key)
        assert.ok(!(last.get(p) >= s), `producer ${p}: seq ${s} after ${last.get(p)}`)
        last.set(p, s)
        pairs.push([p, s])
      }
    }
    return pairs
  })
  // What is missing lies between what a killed consumer took last and what the next one
  // took first, and is at most one batch per kill.
  const lost = []
  for (let k = 0; k < KILLS; k++) {
    const before = new Map()
    const after = new Map()
    for (const [p, s] of perConsumer.slice(0, k + 1).flat()) before.set(p, Math.max(before.get(p) ?? -1, s))
    for (const [p, s] of perConsumer.slice(k + 1).flat()) if (!after.has(p)) after.set(p, s)
    let missing = 0
    for (const p of [1, 2, 3, 4]) {
      for (let s = (before.get(p) ?? -1) + 1; s < (after.get(p) ?? PER); s++) missing++
    }
    lost.push(missing)
    assert.ok(missing <= BATCH, `kill ${k}: ${missing} messages lost, more than one batch (${BATCH})`)
  }
  const delivered = seen.size
  assert.equal(delivered + lost.reduce((a, b) => a + b, 0), 4 * PER, 'every message is delivered or in a killed consumer\'s batch')
  t.diagnostic(`${delivered} of ${4 * PER} delivered; lost at each kill: ${lost.join(', ')}; per consumer: ${perConsumer.map((c) => c.length).join(', ')}`)
})

test('producers blocked in sendAsync() on a full channel all resume once the consumer makes room (3 rounds of 4 × 20,000 through 1 KiB)', async (t) => {
  const { dir, file, ch } = channel(t, { capacity: 1024 })
  ch.receiveBatch(1) // the consumer
  for (let round = 0; round < 3; round++) {
    const producers = [1, 2, 3, 4].map((id) => spawnFixture(t, 'rel-producer.js', [file, id, 20_000]))
    let received = 0
    let stalled = null
    while (producers.some((p) => p.exitCode === null) && stalled === null) {
      const batch = ch.receiveBatch(64)
      received += batch.length
      if (batch.length > 0) continue
      if (ch.receiveSync(20) !== null) {
        received++
        continue
      }
      // Nothing queued for a while: the producers still running must send again within a
      // generous bound — they wait in sendAsync() for exactly this room.
      const before = received
      try {
        await waitFor(() => ch.queued > 0 || producers.every((p) => p.exitCode !== null), 5_000, 'a producer to use the free room')
      } catch {
        stalled = `round ${round}: the channel stayed empty for 5 s after ${before} of 80,000 messages while producers ${producers.filter((p) => p.exitCode === null).map((p) => p.pid).join(', ')} waited in sendAsync()`
      }
    }
    assert.equal(stalled, null, stalled)
    for (const p of producers) assert.deepEqual(await finished(p, 60_000, 'a producer'), { done: 20_000 })
    received += ch.receiveBatch().length
    assert.equal(received, 80_000)
  }
})

// ---------------------------------------------------------------------------------------
// 5. Create race
// ---------------------------------------------------------------------------------------

async function race(t, kind, prepare) {
  const dir = tempDir(t)
  const file = path.join(dir, kind)
  const start = path.join(dir, 'start')
  prepare?.(file)
  const racers = Array.from({ length: 16 }, (_, i) => spawnFixture(t, 'rel-racer.js', [kind, file, start, i]))
  for (const r of racers) await printed(r, 'armed', 30_000, 'a racer')
  fs.writeFileSync(start, '')
  const results = []
  for (const r of racers) results.push(await finished(r, 60_000, 'a racer'))
  const ino = fs.statSync(file).ino
  for (const r of results) {
    assert.equal(r.ino, ino, 'every racer opened the file that stayed in place')
    assert.equal(r.capacity, 4096)
  }
  assert.deepEqual(fs.readdirSync(dir).sort(), [kind, 'start'].sort(), 'no temporary .creating file is left')
  // A value: a 512-byte header and three slots; a channel: a 256-byte header and the ring.
  assert.equal(fs.statSync(file).size, kind === 'value' ? 512 + 3 * 4096 : 256 + 4096)
  return file
}

for (const [label, prepare] of [['a new path', null], ['an existing empty file', (f) => fs.writeFileSync(f, '', { mode: 0o600 })]]) {
  test(`16 processes open-or-create ${label} at once as a value: one initialises, all 16 increments survive`, async (t) => {
    const file = await race(t, 'value', prepare)
    const obj = SharedObject.open(file)
    t.after(() => obj.close())
    assert.equal(obj.read(), '16', 'no racer re-initialised the segment after another wrote to it')
    assert.equal(obj.version, 16)
  })

  test(`16 processes open-or-create ${label} at once as a channel: one initialises, all 16 messages arrive`, async (t) => {
    const file = await race(t, 'channel', prepare)
    const ch = Channel.open(file)
    t.after(() => ch.close())
    const got = ch.receiveBatch(100, { encoding: 'utf8' }).sort()
    assert.deepEqual(got, Array.from({ length: 16 }, (_, i) => `hello ${i}`).sort())
  })
}

// ---------------------------------------------------------------------------------------
// 6. Path attacks
// ---------------------------------------------------------------------------------------

/** Everything about a path that an open must not change. */
function snapshot(p) {
  let st
  try {
    st = fs.lstatSync(p)
  } catch (err) {
    return { missing: err.code }
  }
  const facts = { ino: st.ino, mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, nlink: st.nlink, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs }
  if (st.isFile()) facts.bytes = fs.readFileSync(p).toString('base64')
  if (st.isDirectory()) facts.entries = fs.readdirSync(p).sort()
  if (st.isSymbolicLink()) facts.target = fs.readlinkSync(p)
  return facts
}

const isRoot = process.getuid?.() === 0

function attackCases(dir) {
  const file = (name, content, mode = 0o600) => {
    const p = path.join(dir, name)
    fs.writeFileSync(p, content, { mode })
    fs.chmodSync(p, mode)
    return p
  }
  const segment = (name) => {
    const p = path.join(dir, name)
    SharedObject.open(p).close()
    return p
  }
  const cases = []
  const valid = segment('valid-target')
  cases.push({ name: 'a symlink to a valid segment', path: path.join(dir, 'link'), watch: [valid], code: 'ERR_UNSAFE_PATH', make: (p) => fs.symlinkSync(valid, p) })
  cases.push({ name: 'a dangling symlink (its target must not be created)', path: path.join(dir, 'dangling'), watch: [path.join(dir, 'nowhere')], code: 'ERR_UNSAFE_PATH', make: (p) => fs.symlinkSync(path.join(dir, 'nowhere'), p) })
  const linked = segment('hard-target')
  cases.push({ name: 'a hard link (two links to one file)', path: path.join(dir, 'hard'), watch: [linked], code: 'ERR_UNSAFE_PATH', make: (p) => fs.linkSync(linked, p) })
  cases.push({ name: 'a group-writable file', path: path.join(dir, 'group'), code: 'ERR_UNSAFE_PATH', make: (p) => { SharedObject.open(p).close(); fs.chmodSync(p, 0o620) } })
  cases.push({ name: 'a world-writable file', path: path.join(dir, 'world'), code: 'ERR_UNSAFE_PATH', make: (p) => { SharedObject.open(p).close(); fs.chmodSync(p, 0o606) } })
  cases.push({ name: 'a world-writable empty file', path: path.join(dir, 'world-empty'), code: 'ERR_UNSAFE_PATH', make: (p) => file('world-empty', '', 0o666) })
  if (isRoot) {
    cases.push({ name: 'a file owned by another user (nobody)', path: path.join(dir, 'foreign-owner'), code: 'ERR_UNSAFE_PATH', make: (p) => { SharedObject.open(p).close(); fs.chownSync(p, 65534, 65534) } })
    cases.push({ name: 'an empty file owned by another user (nobody)', path: path.join(dir, 'foreign-owner-empty'), code: 'ERR_UNSAFE_PATH', make: (p) => { file('foreign-owner-empty', ''); fs.chownSync(p, 65534, 65534) } })
  }
  cases.push({ name: 'a directory', path: path.join(dir, 'a-dir'), code: 'ERR_NOT_A_SEGMENT', make: (p) => { fs.mkdirSync(p); fs.writeFileSync(path.join(p, 'inside'), 'x') } })
  cases.push({ name: 'a path with a NUL byte', path: path.join(dir, 'nul\0byte'), watch: [path.join(dir, 'nul')], code: 'ERR_INVALID_ARG_VALUE', make: () => {} })
  cases.push({ name: 'a foreign file (text)', path: path.join(dir, 'text'), code: 'ERR_NOT_A_SEGMENT', make: () => file('text', 'hello, this is not a segment\n'.repeat(40)) })
  cases.push({ name: 'a foreign file (random bytes, 64 KiB)', path: path.join(dir, 'random'), code: 'ERR_NOT_A_SEGMENT', make: () => file('random', require('node:crypto').randomBytes(64 << 10)) })
  cases.push({ name: 'a short file without the magic', path: path.join(dir, 'short-foreign'), code: 'ERR_NOT_A_SEGMENT', make: () => file('short-foreign', Buffer.from('not a segment at all, and short')) })
  cases.push({ name: 'a file of 5 bytes', path: path.join(dir, 'five'), code: 'ERR_NOT_A_SEGMENT', make: () => file('five', 'SHARE') })
  cases.push({ name: 'a short file with the magic (100 bytes)', path: path.join(dir, 'short-magic'), code: 'ERR_CORRUPT', make: () => file('short-magic', Buffer.concat([Buffer.from('SHAREOBJ'), Buffer.alloc(92, 0xab)])) })
  cases.push({ name: 'a FIFO', path: path.join(dir, 'fifo'), code: 'ERR_NOT_A_SEGMENT', make: (p) => execFileSync('mkfifo', ['-m', '600', p]) })
  return cases
}

for (const [api, open] of [
  ['SharedObject.open', (p) => SharedObject.open(p)],
  ['SharedObject.open({ readOnly: true })', (p) => SharedObject.open(p, { readOnly: true })],
  ['Channel.open', (p) => Channel.open(p, { capacity: 4096 })],
]) {
  test(`${api} refuses hostile paths with a stable code and changes nothing`, (t) => {
    const dir = tempDir(t)
    const cases = attackCases(dir)
    if (!isRoot) t.diagnostic('not root: the "owned by another user" cases are skipped (chown needs root)')
    for (const c of cases) {
      if (api.includes('readOnly') && c.name === 'a FIFO') continue // its own test below
      c.make(c.path)
      const watched = [c.path, ...(c.watch ?? []), dir]
      const before = watched.map(snapshot)
      assert.throws(() => open(c.path), (err) => {
        assert.equal(err.code, c.code, `${c.name}: ${err.message}`)
        return true
      }, `${c.name} was opened`)
      assert.deepEqual(watched.map(snapshot), before, `${c.name}: something changed`)
    }
  })
}

test('SharedObject.open({ readOnly: true }) of a FIFO is refused and does not block', async (t) => {
  const dir = tempDir(t)
  const fifo = path.join(dir, 'fifo')
  execFileSync('mkfifo', ['-m', '600', fifo])
  const child = spawnFixture(t, 'rel-open.js', ['value', fifo, JSON.stringify({ readOnly: true })])
  // exitOf rejects (and kills the child) if opening the FIFO blocks: open(2) waits for a writer.
  await exitOf(child, 5_000, 'the child opening a FIFO read-only to return')
  assert.equal(lastJson(child).code, 'ERR_NOT_A_SEGMENT')
})

// ---------------------------------------------------------------------------------------
// 7. Hostile writer
// ---------------------------------------------------------------------------------------

test('a process overwriting headers and records with garbage: readers, a writer, a producer and a consumer report only coded errors and exit on their own', async (t) => {
  const dir = tempDir(t)
  const valueFile = path.join(dir, 'value')
  const chanFile = path.join(dir, 'chan')
  const stop = path.join(dir, 'stop')
  SharedObject.open(valueFile, { size: 1024 }).close()
  Channel.open(chanFile, { capacity: 4096 }).close()
  const roles = [['value-reader', valueFile], ['value-watcher', valueFile], ['value-writer', valueFile], ['chan-consumer', chanFile], ['chan-producer', chanFile]]
  const users = roles.map(([role, file]) => spawnFixture(t, 'rel-hostile-user.js', [role, file, stop]))
  for (const u of users) await printed(u, 'ready', 20_000, 'a user')
  const seed = 1 + Math.floor(Math.random() * 2 ** 30)
  const attacker = spawnFixture(t, 'rel-attacker.js', [valueFile, chanFile, 6_000, seed])
  const attack = await finished(attacker, 30_000, 'the attacker')
  fs.writeFileSync(stop, '')
  // Each must end by itself: no crash (signal), no endless loop, no unexpected error.
  const ends = await Promise.all(users.map((u) => exitOf(u, 30_000, 'a user to exit').catch((err) => ({ hung: err.message }))))
  const summaries = users.map((u, i) => `${roles[i][0]}: ${JSON.stringify(ends[i])} ${u.lines.at(-1)}${ends[i].code ? ' ' + u.stderrText.split('\n').slice(0, 8).join(' | ') : ''}`)
  t.diagnostic(`seed ${seed}, ${attack.writes} garbage writes, ${attack.restores} restores; ${summaries.join('; ')}`)
  for (const [i, u] of users.entries()) {
    assert.deepEqual(ends[i], { code: 0, signal: null }, summaries[i])
    assert.ok(lastJson(u).ops > 0, `${roles[i][0]} did nothing`)
  }
})

// ---------------------------------------------------------------------------------------
// 9. Truncation
// ---------------------------------------------------------------------------------------

test('the library never shrinks a segment: a smaller size or capacity at open is ignored', (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'value')
  const big = SharedObject.open(file, { size: 64 << 10 })
  t.after(() => big.close())
  big.write('x'.repeat(60 << 10))
  const size = fs.statSync(file).size
  const small = SharedObject.open(file, { size: 16, maxSize: 1 << 20 })
  assert.equal(small.capacity, big.capacity)
  small.write('tiny')
  small.close()
  assert.equal(fs.statSync(file).size, size)
  assert.equal(big.read(), 'tiny')

  const chanFile = path.join(dir, 'chan')
  const ch = Channel.open(chanFile, { capacity: 1 << 16 })
  t.after(() => ch.close())
  const chanSize = fs.statSync(chanFile).size
  const other = Channel.open(chanFile, { capacity: 1024 })
  assert.equal(other.capacity, 1 << 16)
  other.close()
  assert.equal(fs.statSync(chanFile).size, chanSize)
})

for (const kind of ['value', 'channel']) {
  test(`a ${kind} zeroed or emptied by another program while open is not re-initialised by the next opener`, async (t) => {
    const dir = tempDir(t)
    const scenarios = []
    for (const how of ['zeroed', 'emptied']) {
      const file = path.join(dir, `${kind}-${how}`)
      const holder = spawnFixture(t, 'rel-hold-open.js', [kind, file])
      await printed(holder, 'open', 20_000, 'the holder')
      const size = fs.statSync(file).size
      if (how === 'zeroed') fs.writeFileSync(file, Buffer.alloc(size))
      else fs.truncateSync(file, 0) // the holder touches nothing, so it gets no SIGBUS
      scenarios.push({ how, file, holder, size })
    }
    // Both openers at once: each waits for the holder (INIT_WAIT, 5 s), then gives up.
    const openers = scenarios.map((s) => runFixture(t, 'rel-open.js', [kind, s.file], {}, 30_000))
    for (const [i, r] of (await Promise.all(openers)).entries()) {
      const s = scenarios[i]
      assert.equal(r.code, 0, r.stderr)
      const result = JSON.parse(r.stdout.trim().split('\n').at(-1))
      assert.equal(result.code, 'ERR_TIMEOUT', `${s.how}: ${JSON.stringify(result)}`)
      const bytes = fs.readFileSync(s.file)
      assert.equal(bytes.length, s.how === 'zeroed' ? s.size : 0, `${s.how}: the size changed`)
      assert.ok(bytes.every((b) => b === 0), `${s.how}: the file was re-initialised while open elsewhere`)
    }
    // Once the holder is gone, the next opener may initialise it.
    for (const s of scenarios) {
      s.holder.kill('SIGKILL')
      await exitOf(s.holder, 10_000)
      const r = await runFixture(t, 'rel-open.js', [kind, s.file])
      assert.equal(JSON.parse(r.stdout).ok, true, `${s.how}: ${r.stdout}`)
    }
  })

  test(`a ${kind} file shorter than its header says is ERR_CORRUPT at open, never a bus error, and is left as it was`, async (t) => {
    const dir = tempDir(t)
    for (const keep of [256 + 100, 100, 255]) {
      const file = path.join(dir, `${kind}-${keep}`)
      if (kind === 'value') SharedObject.open(file, { size: 4096 }).close()
      else Channel.open(file, { capacity: 4096 }).close()
      fs.truncateSync(file, keep)
      const before = snapshot(file)
      // In a child, so that a bus error would show as a signal rather than kill the tests.
      const r = await runFixture(t, 'rel-open.js', [kind, file])
      assert.equal(r.signal, null)
      assert.equal(JSON.parse(r.stdout).code, 'ERR_CORRUPT', `${keep} bytes: ${r.stdout}`)
      assert.deepEqual(snapshot(file), before)
    }
  })
}

// ---------------------------------------------------------------------------------------
// 10. Full filesystem
// ---------------------------------------------------------------------------------------

test('a full filesystem: ENOSPC at create or grow for values and channels, no half-initialised file, no bus error later', async (t) => {
  if (!(await canUnshareMounts())) {
    t.skip('unshare -m is not available here (needs root or user namespaces)')
    return
  }
  const dir = tempDir(t)
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(mnt)
  let stdout
  try {
    stdout = execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" "$3" "$1"', 'sh', mnt, process.execPath, path.join(FIXTURES, 'rel-enospc.js')], { encoding: 'utf8', timeout: 60_000 })
  } catch (err) {
    assert.fail(`the child failed (signal ${err.signal}, status ${err.status}): ${err.stdout} ${err.stderr}`)
  }
  const result = JSON.parse(stdout.trim().split('\n').at(-1))
  assert.deepEqual(result, {
    valueCreate: 'ENOSPC',
    channelCreate: 'ENOSPC',
    fill: 'ENOSPC',
    grow: 'ENOSPC',
    afterGrow: 'kept',
    emptyValueInit: 'ENOSPC',
    emptyChannelInit: 'ENOSPC',
    emptySizes: [0, 0],
    fullValue: true,
    channelRoundTrip: { sent: 7, got: 7, fit: 7 },
    files: ['channel', 'empty-channel', 'empty-value', 'filler', 'value'],
  })
})

// ---------------------------------------------------------------------------------------
// 11. Leaks
// ---------------------------------------------------------------------------------------

test('1,000,000 operations, 12,000 open/close cycles, 10,000 zero-copy Buffers, 20,000 consume() views and 13,200 timed-out waits leave descriptors, mappings, threads and memory flat', async (t) => {
  const dir = tempDir(t)
  const child = spawnFixture(t, 'rel-leaks.js', [dir])
  const results = await finished(child, 170_000, 'the leak workloads')
  assert.equal(results.error, undefined, results.error)
  for (const [name, { before, after, ms }] of Object.entries(results)) {
    t.diagnostic(`${name} (${ms} ms): fds ${before.fds}→${after.fds}, maps ${before.maps}→${after.maps}, threads ${before.threads}→${after.threads}, RSS ${before.rssKiB}→${after.rssKiB} KiB`)
    assert.ok(after.fds <= before.fds, `${name}: ${after.fds - before.fds} descriptors leaked`)
    assert.ok(after.threads <= before.threads, `${name}: ${after.threads - before.threads} threads left running`)
    // One leaked mapping per cycle would add 10,000 lines; after the warm-up, V8 and the
    // allocator add a handful at most.
    assert.ok(after.maps - before.maps <= 32, `${name}: ${after.maps - before.maps} more mappings`)
    // 1,000,000 operations leaking 16 bytes each would add 16 MB; for the 10,000-cycle
    // workloads (whose leaks show as descriptors and mappings first) allow allocator noise.
    const rssBound = name === 'operations' ? 16 << 10 : 32 << 10
    assert.ok(after.rssKiB - before.rssKiB <= rssBound, `${name}: RSS grew by ${after.rssKiB - before.rssKiB} KiB`)
  }
})


// ---------------------------------------------------------------------------------------
// Waiters killed while parked
// ---------------------------------------------------------------------------------------

/** The header bytes [from, to) of a segment file, read with plain file I/O. */
function headerBytes(file, from, to) {
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(to - from)
    fs.readSync(fd, buf, 0, buf.length, from)
    return buf
  } finally {
    fs.closeSync(fd)
  }
}
const announced = (bytes) => bytes.some((b) => b !== 0)

test('a waiter SIGKILLed while parked does not leave writers waking nobody: the next write frees its announcement', async (t) => {
  const { file, obj } = segment(t)
  const slots = () => headerBytes(file, 192, 256) // the value header's waiter slots
  for (const mode of ['sync', 'watch']) {
    const child = spawnFixture(t, 'wait-change.js', [file, mode])
    await printed(child, '"waiting"', 10_000, `the ${mode} waiter`)
    await waitFor(() => announced(slots()), 10_000, `the ${mode} waiter to park`)
    child.kill('SIGKILL')
    await exitOf(child, 10_000, `the ${mode} waiter to die`)
    assert.ok(announced(slots()), 'a dead waiter stays announced until a writer looks')
    obj.write(`after ${mode}`)
    assert.ok(!announced(slots()), `the dead ${mode} waiter's slot is free again`)
  }
  // A live waiter stays announced through writes that do not concern it, and is woken.
  const live = spawnFixture(t, 'wait-change.js', [file, 'sync'])
  await printed(live, '"waiting"', 10_000, 'the live waiter')
  await waitFor(() => announced(slots()), 10_000, 'the live waiter to park')
  obj.write('for the live one')
  const { code } = await exitOf(live, 10_000, 'the live waiter')
  assert.equal(code, 0)
  assert.equal(JSON.parse(live.lines.at(-1)).value, 'for the live one')
})

test('a consumer SIGKILLed while parked in receiveSync(): the next send frees its announcement', async (t) => {
  const { file, ch } = channel(t, { capacity: 4096 })
  const slots = () => headerBytes(file, 200, 256) // the channel header's data-waiter slots
  const consumer = spawnFixture(t, 'chan-consumer.js', [file, 1])
  await printed(consumer, 'ready', 10_000, 'the consumer')
  await waitFor(() => announced(slots()), 10_000, 'the consumer to park')
  consumer.kill('SIGKILL')
  await exitOf(consumer, 10_000, 'the consumer to die')
  assert.ok(announced(slots()))
  assert.equal(ch.send('nobody waits'), true)
  assert.ok(!announced(slots()), "the dead consumer's slot is free again")
})

test('a producer SIGKILLed while parked in sendAsync(): the next receive frees its announcement', async (t) => {
  const { file, ch } = channel(t, { capacity: 4096 })
  const slots = () => headerBytes(file, 148, 192) // the channel header's space-waiter slots
  const producer = spawnFixture(t, 'chan-send-wait.js', [file])
  await printed(producer, 'waiting', 10_000, 'the producer')
  await waitFor(() => announced(slots()), 10_000, 'the producer to park')
  producer.kill('SIGKILL')
  await exitOf(producer, 10_000, 'the producer to die')
  assert.ok(announced(slots()))
  assert.notEqual(ch.receive(), null)
  assert.ok(!announced(slots()), "the dead producer's slot is free again")
})
