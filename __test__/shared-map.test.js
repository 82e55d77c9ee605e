'use strict'
// SharedMap (issue #12): one keyed map shared by every process on the host. Multi-process
// promises are tested with real processes (fixtures/map-*.js); every wait has a deadline.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { SharedMap, SharedObject } = require('..')
const { tempDir, spawnFixture, waitFor, within, exitOf, runFixture } = require('./helpers.js')
const { checkValue, makeValue } = require('./fixtures/map-common.js')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const jsonLines = (child) => child.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))

/** A map `name` in a fresh temp folder, closed after the test. */
function map(t, options, name = 'map') {
  const dir = tempDir(t)
  const file = path.join(dir, name)
  const m = SharedMap.open(file, options)
  t.after(() => m.close())
  return { dir, file, m }
}

/** Runs map-op.js on `file` and returns its results. */
async function ops(t, file, list, options) {
  const r = await runFixture(t, 'map-op.js', [file, JSON.stringify(list), ...(options ? [JSON.stringify(options)] : [])])
  assert.equal(r.code, 0, `map-op failed: ${r.stdout} ${r.stderr}`)
  return JSON.parse(r.stdout).results
}

test('two processes see each other\'s set, delete and clear', async (t) => {
  const { file, m } = map(t)
  m.set('from-parent', 'p')
  const [seen] = await ops(t, file, [['get', 'from-parent']])
  assert.equal(seen, 'p')
  await ops(t, file, [['set', 'from-child', { n: 1 }], ['delete', 'from-parent']])
  assert.deepEqual(m.get('from-child'), { n: 1 })
  assert.equal(m.get('from-parent'), undefined)
  assert.equal(m.size, 1)
  await ops(t, file, [['clear']])
  assert.equal(m.size, 0)
  assert.equal(m.get('from-child'), undefined)
})

test('values keep their type through the default codec: strings, numbers, booleans, null, Buffers, Uint8Arrays, objects', (t) => {
  const { m } = map(t)
  const values = {
    s: 'héllo 你好 🎉\0x',
    empty: '',
    n: -0,
    nan: NaN,
    inf: -Infinity,
    big: 2 ** 60,
    t: true,
    f: false,
    z: null,
    buf: Buffer.from([1, 2, 3]),
    u8: new Uint8Array([4, 5]),
    obj: { a: [1, { b: 'c' }], d: null },
    arr: [1, 'two', [3]],
  }
  for (const [k, v] of Object.entries(values)) m.set(k, v)
  for (const [k, v] of Object.entries(values)) assert.deepEqual(m.get(k), v, k)
  assert.ok(Buffer.isBuffer(m.get('buf')))
  assert.ok(!Buffer.isBuffer(m.get('u8')) && m.get('u8') instanceof Uint8Array)
  assert.ok(Object.is(m.get('n'), -0))
  // A string stays the same string: no JSON round trip.
  m.set('json-looking', '{"a":1}')
  assert.equal(m.get('json-looking'), '{"a":1}')
})

test('the default codec refuses values JSON would change, with a coded error, and the old value stays', (t) => {
  const { m } = map(t)
  m.set('k', 'old')
  for (const bad of [new Map([[1, 2]]), new Date(0), 10n, Symbol('s'), () => 1, new Float32Array(2), new (class X {})()]) {
    assert.throws(() => m.set('k', bad), (err) => err.code === 'ERR_INVALID_ARG_TYPE' && err instanceof TypeError, String(bad?.constructor?.name))
  }
  const cyclic = {}
  cyclic.self = cyclic
  assert.throws(() => m.set('k', cyclic), { code: 'ERR_CODEC_ENCODE' })
  assert.equal(m.get('k'), 'old')
})

test("codec 'v8' carries Map, Set, Date, BigInt and typed arrays; codec 'json' and a custom codec round-trip", (t) => {
  const dir = tempDir(t)
  const v8map = SharedMap.open(path.join(dir, 'v8'), { codec: 'v8' })
  t.after(() => v8map.close())
  const value = { m: new Map([['a', 1]]), s: new Set([1, 2]), d: new Date(5), b: 10n ** 20n, f: new Float64Array([1.5]) }
  v8map.set('k', value)
  assert.deepEqual(v8map.get('k'), value)
  assert.throws(() => v8map.set('k', { f() {} }), { code: 'ERR_CODEC_ENCODE' })

  const json = SharedMap.open(path.join(dir, 'json'), { codec: 'json' })
  t.after(() => json.close())
  json.set('k', { a: [1, 2] })
  json.set('s', 'text')
  assert.deepEqual(json.get('k'), { a: [1, 2] })
  assert.equal(json.get('s'), 'text')

  const upper = {
    name: 'upper',
    encode: (v) => Buffer.from(String(v).toUpperCase()),
    decode: (b) => `decoded:${b.toString()}`,
  }
  const custom = SharedMap.open(path.join(dir, 'custom'), { codec: upper })
  t.after(() => custom.close())
  custom.set('k', 'abc')
  assert.equal(custom.get('k'), 'decoded:ABC')
  // Another handle without the codec can read the keys but refuses to write a mixed encoding.
  const plain = SharedMap.open(path.join(dir, 'custom'))
  t.after(() => plain.close())
  assert.deepEqual([...plain.keys()], ['k'])
  assert.throws(() => plain.set('k', 'x'), { code: 'ERR_CODEC_ENCODE' })
  assert.throws(() => plain.get('k'), { code: 'ERR_CODEC_DECODE' })
  // A different codec than the map's is refused at open, naming the option.
  assert.throws(() => SharedMap.open(path.join(dir, 'json'), { codec: 'v8' }), (err) => err.code === 'ERR_OPTION_MISMATCH' && /codec/.test(err.message))
})

test('4 processes × 10,000 incr on one key = exactly 40,000', async (t) => {
  const { file, m } = map(t)
  const runs = [0, 1, 2, 3].map(() => runFixture(t, 'map-op.js', [file, JSON.stringify([['incr', 'hits', 1, 10_000]])], {}, 120_000))
  for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.equal(m.get('hits'), 40_000)
})

test('update() is an atomic read-modify-write across processes', async (t) => {
  const { file, m } = map(t)
  const runs = [0, 1, 2].map(() => runFixture(t, 'map-op.js', [file, JSON.stringify([['update', 'n', 2, 2_000]])], {}, 120_000))
  for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.equal(m.get('n'), 12_000)
  // fn sees the current value; undefined deletes; a throwing fn changes nothing; fn must
  // not write to its map nor return a promise.
  assert.equal(m.update('n', (v) => v + 1), 12_001)
  assert.equal(m.update('n', () => undefined), undefined)
  assert.equal(m.has('n'), false)
  m.set('keep', 1)
  assert.throws(() => m.update('keep', () => { throw new Error('boom') }), /boom/)
  assert.throws(() => m.update('keep', () => m.set('other', 1)), { code: 'ERR_INVALID_STATE' })
  assert.throws(() => m.update('keep', async () => 2), { code: 'ERR_INVALID_RETURN_VALUE' })
  assert.equal(m.get('keep'), 1)
  m.set('after', 'the lock was released')
})

test('incr: a missing key starts at 0 with the given ttl, an existing one keeps its expiry, a non-number is ERR_NOT_A_NUMBER', async (t) => {
  const { m } = map(t)
  assert.equal(m.incr('w', 1, { ttl: 200 }), 1)
  const left = m.getRemainingTTL('w')
  assert.ok(left > 0 && left <= 200, String(left))
  await sleep(60)
  assert.equal(m.incr('w', 1, { ttl: 10_000 }), 2)
  assert.ok(m.getRemainingTTL('w') <= 200, 'the window is the first hit\'s')
  await sleep(200)
  assert.equal(m.get('w'), undefined)
  assert.equal(m.incr('w'), 1, 'an expired counter starts again')
  assert.equal(m.getRemainingTTL('w'), Infinity)
  assert.equal(m.getRemainingTTL('missing'), 0)
  m.set('s', 'text')
  assert.throws(() => m.incr('s'), { code: 'ERR_NOT_A_NUMBER' })
  assert.throws(() => m.incr('w', NaN), { code: 'ERR_OUT_OF_RANGE' })
})

test('ttl: entries expire in every process; updateAgeOnGet moves the expiry on each get', async (t) => {
  const { file, m } = map(t, { ttl: 150, updateAgeOnGet: true })
  m.set('a', 1)
  m.set('forever', 2, { ttl: 0 })
  for (let i = 0; i < 5; i++) {
    await sleep(60)
    assert.equal(m.get('a'), 1, 'each get extends its life')
  }
  await sleep(250)
  assert.equal(m.has('a'), false)
  const [a, forever] = await ops(t, file, [['get', 'a'], ['get', 'forever']])
  assert.equal(a, null)
  assert.equal(forever, 2)
  assert.equal(m.purgeStale(), 1)
  assert.equal(m.size, 1)
})

test('max: the least recently used entry is evicted, a key read recently survives, in another process too', async (t) => {
  const { file, m } = map(t, { max: 3 })
  m.set('a', 1).set('b', 2).set('c', 3)
  assert.equal(m.get('a'), 1)
  await ops(t, file, [['set', 'd', 4]])
  assert.equal(m.size, 3)
  assert.equal(m.get('a'), 1, 'read recently: kept')
  assert.equal(m.has('b'), false, 'least recently used: evicted')
  assert.equal(m.get('d'), 4)
  for (let i = 0; i < 200; i++) m.set(`x${i}`, i)
  assert.equal(m.size, 3)
  assert.equal(m.info().max, 3)
})

test('maxSize without eviction is ERR_MAP_FULL and keeps what is stored; with evict: true it evicts', (t) => {
  const dir = tempDir(t)
  const full = SharedMap.open(path.join(dir, 'full'), { maxSize: 1000 })
  t.after(() => full.close())
  full.set('a', 'x'.repeat(500))
  assert.throws(() => full.set('b', 'y'.repeat(600)), (err) => err.code === 'ERR_MAP_FULL' && err.message.includes(path.join(dir, 'full')))
  assert.equal(full.get('a'), 'x'.repeat(500))
  assert.throws(() => full.set('c', 'z'.repeat(2000)), { code: 'ERR_VALUE_TOO_LARGE' })
  const lru = SharedMap.open(path.join(dir, 'lru'), { maxSize: 1000, evict: true })
  t.after(() => lru.close())
  for (let i = 0; i < 100; i++) lru.set(`k${i}`, 'v'.repeat(90))
  assert.ok(lru.info().bytes <= 1000)
  assert.equal(lru.get('k99'), 'v'.repeat(90))
})

test('grows from its initial size to 100,000 entries, read back whole by another process', async (t) => {
  const { file, m } = map(t)
  const before = fs.statSync(file).size
  for (let i = 0; i < 100_000; i++) m.set(`user:${i}`, `{"id":${i},"name":"user ${i}"}`)
  assert.ok(fs.statSync(file).size > before)
  const check = `
    const { SharedMap } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const m = SharedMap.open(${JSON.stringify(file)})
    let n = 0, bad = 0
    for (const [k, v] of m) { n++; if (v !== '{"id":' + k.slice(5) + ',"name":"user ' + k.slice(5) + '"}') bad++ }
    for (let i = 0; i < 100000; i += 997) if (m.get('user:' + i) === undefined) bad++
    console.log(JSON.stringify({ n, bad, size: m.size }))
  `
  const r = spawnSync(process.execPath, ['-e', check], { encoding: 'utf8', timeout: 120_000 })
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { n: 100_000, bad: 0, size: 100_000 })
})

test('a writer SIGKILLed mid-set 200 times: a validating reader never sees a torn or missing value, never hangs, and the map stays usable', async (t) => {
  const { dir, file, m } = map(t)
  const KEYS = 32
  for (let i = 0; i < KEYS; i++) m.set(`k${i}`, makeValue(`k${i}`, i, 40))
  const stop = path.join(dir, 'stop')
  const validator = spawnFixture(t, 'map-validator.js', [file, KEYS, stop])
  await waitFor(() => validator.lines.includes('ready'), 20_000, 'the validator')
  // The last progress line, found from the end (re-parsing every line on each poll would
  // make the wait itself grow with the run).
  const progress = () => {
    const line = validator.lines.findLast((l) => l.startsWith('{"progress"'))
    return line === undefined ? 0 : JSON.parse(line).progress
  }
  const ROUNDS = 200
  const writer = (round) => spawnFixture(t, 'map-writer.js', [file, KEYS, 20, 40_000, round * 1_000_000, 'wait'])
  const armed = [0, 1, 2].map(writer)
  for (let round = 0; round < ROUNDS; round++) {
    const w = armed.shift()
    await waitFor(() => w.lines.includes('armed'), 20_000, `writer ${round}`)
    w.stdin.write('go\n')
    await waitFor(() => w.lines.includes('ready') || w.exitCode !== null, 20_000, `writer ${round} to start`)
    assert.equal(w.exitCode, null, `writer ${round} failed: ${w.stdoutText} ${w.stderrText}`)
    await sleep(Math.floor(Math.random() * 8))
    w.kill('SIGKILL')
    await exitOf(w, 10_000, `writer ${round} to die`)
    armed.push(writer(round + 3))
    if (round % 40 === 39) {
      // The map stays usable: a set and a get from this process after the kill.
      m.set('probe', round)
      assert.equal(m.get('probe'), round)
      const before = progress()
      // Bounded, but generous: on a loaded 2-core machine a pass over 32 values of up to
      // 40 KB can take seconds of wall time.
      await waitFor(() => progress() > before, 60_000, 'the validator to keep reading')
    }
  }
  for (const w of armed) w.kill('SIGKILL')
  fs.writeFileSync(stop, '')
  const { code } = await exitOf(validator, 60_000, 'the validator')
  assert.equal(code, 0, validator.stderrText)
  const result = jsonLines(validator).at(-1)
  assert.deepEqual(result.bad, [], 'every value read was whole')
  assert.ok(result.done > 0)
  for (let i = 0; i < KEYS; i++) assert.equal(checkValue(`k${i}`, m.get(`k${i}`)), null)
  assert.equal([...m.keys()].filter((k) => k.startsWith('k')).length, KEYS)
  // No space leak that survives compaction: the heap stays within a few times the data.
  const info = m.info()
  assert.ok(info.heapBytes < 64 << 20, `heap of ${info.heapBytes} bytes`)
})

test('getOrSet with 8 processes missing one key: fn runs once and all get its value', async (t) => {
  const { dir, file, m } = map(t)
  const go = path.join(dir, 'go')
  const kids = Array.from({ length: 8 }, () => spawnFixture(t, 'map-getorset.js', [file, 'slow', go]))
  for (const k of kids) await waitFor(() => k.lines.includes('ready'), 30_000, 'a child')
  fs.writeFileSync(go, '')
  const results = []
  for (const k of kids) {
    await exitOf(k, 60_000, 'a getOrSet child')
    results.push(jsonLines(k).at(-1))
  }
  assert.equal(m.get('runs'), 1, 'fn ran once')
  const values = new Set(results.map((r) => r.value))
  assert.equal(values.size, 1, JSON.stringify(results))
  assert.match([...values][0], /^computed by \d+$/)
})

test('getOrSet: a runner that throws or dies does not strand the waiters', async (t) => {
  const { dir, file, m } = map(t)
  const go = path.join(dir, 'go')
  // The runner that claims first throws (or dies); the others wait, then one of them runs.
  for (const mode of ['throw', 'die']) {
    m.delete('runs')
    const key = `k-${mode}`
    const first = spawnFixture(t, 'map-getorset.js', [file, key, go, mode])
    await waitFor(() => first.lines.includes('ready'), 30_000, 'the failing runner')
    fs.writeFileSync(go, '')
    await waitFor(() => m.get('runs') === 1, 30_000, 'the failing runner to claim')
    const waiter = m.getOrSet(key, async () => 'recovered', { timeout: 20_000 })
    assert.equal(await within(waiter, 30_000, 'the waiter'), 'recovered')
    await exitOf(first, 30_000, 'the failing runner')
    fs.rmSync(go)
  }
  // Two calls in one handle share one computation too.
  let runs = 0
  const slow = async () => {
    runs++
    await sleep(50)
    return 'once'
  }
  assert.deepEqual(await Promise.all([m.getOrSet('same', slow), m.getOrSet('same', slow)]), ['once', 'once'])
  assert.equal(runs, 1)
  // In-process: a throwing fn rejects its own call and leaves no claim behind.
  await assert.rejects(m.getOrSet('x', async () => { throw new Error('nope') }), /nope/)
  assert.equal(await m.getOrSet('x', () => 'ok'), 'ok')
  assert.equal(await m.getOrSet('x', () => 'not called'), 'ok')
})

test('watch(key) and watch(prefix*) hear changes made by another process; waitForChange resolves with the new value', async (t) => {
  const { file, m } = map(t)
  const exact = spawnFixture(t, 'map-watch.js', [file, 'cfg'])
  const prefix = spawnFixture(t, 'map-watch.js', [file, 'user:*'])
  for (const c of [exact, prefix]) await waitFor(() => c.lines.includes('ready'), 20_000, 'a watcher')
  m.set('cfg', { v: 1 })
  m.set('user:1', 'alice')
  m.set('other', 'ignored')
  m.delete('user:1')
  await waitFor(() => jsonLines(exact).length >= 1, 20_000, 'the key watcher')
  await waitFor(() => jsonLines(prefix).some((e) => e.value === null), 20_000, 'the prefix watcher to see the delete')
  assert.deepEqual(jsonLines(exact).at(-1), { key: 'cfg', value: { v: 1 } })
  assert.ok(jsonLines(prefix).every((e) => e.key === 'user:1'), JSON.stringify(jsonLines(prefix)))
  assert.deepEqual(jsonLines(prefix).at(-1), { key: 'user:1', value: null })

  const next = m.waitForChange('later', { timeout: 20_000 })
  await ops(t, file, [['set', 'later', 'now']])
  assert.equal(await next, 'now')
  await assert.rejects(m.waitForChange('never', { timeout: 30 }), { code: 'ERR_TIMEOUT' })
})

test('iteration: keys(), values(), entries(), forEach and for...of each see every entry once', (t) => {
  const { m } = map(t)
  for (let i = 0; i < 500; i++) m.set(`k${i}`, i)
  assert.equal([...m.keys()].length, 500)
  assert.equal(new Set(m.keys()).size, 500)
  assert.equal([...m.values()].reduce((a, b) => a + b, 0), (499 * 500) / 2)
  const seen = new Map()
  m.forEach((v, k, self) => {
    assert.equal(self, m)
    seen.set(k, v)
  })
  assert.equal(seen.size, 500)
  for (const [k, v] of m) assert.equal(`k${v}`, k)
})

test('options fixed at creation are adopted by a later open; a conflicting one names the option', (t) => {
  const { file } = map(t, { max: 100, ttl: 1000 })
  const again = SharedMap.open(file)
  t.after(() => again.close())
  const info = again.info()
  assert.equal(info.max, 100)
  assert.equal(info.ttl, 1000)
  assert.equal(info.evict, true)
  assert.throws(() => SharedMap.open(file, { max: 5 }), (err) => err.code === 'ERR_OPTION_MISMATCH' && /option max/.test(err.message) && err.message.includes(file))
  assert.throws(() => SharedMap.open(file, { ttl: 5 }), (err) => err.code === 'ERR_OPTION_MISMATCH' && /ttl/.test(err.message))
})

test('wrong-type keys, values and options are coded errors', (t) => {
  const { file, m } = map(t)
  for (const key of [1, null, undefined, {}, Symbol('k'), new String('k')]) {
    for (const read of ['get', 'peek', 'has']) {
      assert.throws(() => m[read](key), (err) => err.code === 'ERR_INVALID_ARG_TYPE' && err instanceof TypeError && /"key" argument must be a string/.test(err.message), read)
    }
  }
  // get(), peek() and has() leave these checks to the native side: the same errors come back.
  for (const read of ['get', 'peek', 'has']) {
    assert.throws(() => m[read](''), (err) => err.code === 'ERR_INVALID_ARG_VALUE' && /must not be empty/.test(err.message), read)
    assert.throws(() => m[read]('bad\ud800'), (err) => err.code === 'ERR_INVALID_ARG_VALUE' && /lone surrogate/.test(err.message), read)
    assert.throws(() => m[read]('\udc00'), (err) => err.code === 'ERR_INVALID_ARG_VALUE' && /lone surrogate/.test(err.message), read)
    assert.throws(() => m[read]('x'.repeat(1025)), (err) => err.code === 'ERR_INVALID_ARG_VALUE' && /1024/.test(err.message) && err.message.includes(file), read)
    assert.throws(() => m[read]('é'.repeat(513)), (err) => err.code === 'ERR_INVALID_ARG_VALUE' && /1026 bytes/.test(err.message), read)
  }
  assert.equal(m.get('é'.repeat(512)), undefined)
  assert.throws(() => m.set('', 1), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => m.set('bad\ud800', 1), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => m.set('x'.repeat(1025), 1), (err) => err.code === 'ERR_INVALID_ARG_VALUE' && /1024/.test(err.message))
  m.set('é'.repeat(512), 'a key of exactly 1024 bytes')
  assert.throws(() => m.set('k', 1, { ttl: -1 }), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => m.set('k', 1, { ttl: '5' }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => m.incr('k', '1'), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => m.update('k', 'not a function'), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => SharedMap.open(file + '2', { max: -1 }), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => SharedMap.open(file + '2', { maxSize: 0 }), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => SharedMap.open(file + '2', { codec: 'yaml' }), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => SharedMap.open(file + '2', { evict: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => new SharedMap(), { code: 'ERR_ILLEGAL_CONSTRUCTOR' })
  assert.equal(fs.existsSync(file + '2'), false, 'a refused open creates nothing')
})

test('a map is not a value segment and the other way round; unlink refuses anything but a map', (t) => {
  const { dir, file } = map(t)
  assert.throws(() => SharedObject.open(file), { code: 'ERR_WRONG_KIND' })
  const value = path.join(dir, 'value')
  SharedObject.open(value).close()
  assert.throws(() => SharedMap.open(value), { code: 'ERR_WRONG_KIND' })
  assert.throws(() => SharedMap.unlink(value), { code: 'ERR_WRONG_KIND' })
  const text = path.join(dir, 'notes.txt')
  fs.writeFileSync(text, 'precious')
  assert.throws(() => SharedMap.unlink(text), { code: 'ERR_NOT_A_SEGMENT' })
  assert.equal(fs.readFileSync(text, 'utf8'), 'precious')
  const link = path.join(dir, 'link')
  fs.symlinkSync(file, link)
  assert.throws(() => SharedMap.unlink(link), { code: 'ERR_NOT_A_SEGMENT' })
  assert.ok(fs.existsSync(file))
  SharedMap.unlink(file)
  assert.equal(fs.existsSync(file), false)
})

test('damaged map files give ERR_CORRUPT or a whole value, never a crash', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'map')
  const m = SharedMap.open(file)
  for (let i = 0; i < 300; i++) m.set(`k${i}`, `value ${i}`)
  m.close()
  const clean = fs.readFileSync(file)
  const script = `
    const { SharedMap } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const fs = require('node:fs')
    const [file, seed] = process.argv.slice(1)
    const bytes = fs.readFileSync(file)
    let x = Number(seed)
    const rand = () => (x = (x * 1103515245 + 12345) % 2147483648)
    for (let i = 0; i < 16; i++) bytes.writeUInt32LE(rand(), (rand() % (bytes.length - 4)) & ~3)
    fs.writeFileSync(file, bytes)
    const codes = new Set()
    try {
      const m = SharedMap.open(file)
      for (let i = 0; i < 300; i++) {
        try { const v = m.get('k' + i); if (v !== undefined && v !== 'value ' + i) codes.add('WRONG:' + v) } catch (e) { codes.add(e.code) }
        try { m.set('k' + i, 'new') } catch (e) { codes.add(e.code) }
      }
      try { for (const _ of m) {} } catch (e) { codes.add(e.code) }
    } catch (e) { codes.add(e.code) }
    console.log(JSON.stringify([...codes]))
  `
  const allowed = new Set(['ERR_CORRUPT', 'ERR_NOT_A_SEGMENT', 'ERR_UNSUPPORTED_VERSION', 'ERR_WRONG_KIND', 'ERR_MAP_FULL', 'ERR_TIMEOUT', 'ERR_CODEC_DECODE'])
  for (let seed = 1; seed <= 12; seed++) {
    fs.writeFileSync(file, clean)
    const r = spawnSync(process.execPath, ['-e', script, file, String(seed)], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.signal, null, `seed ${seed}: killed by ${r.signal}`)
    assert.equal(r.status, 0, `seed ${seed}: ${r.stderr}`)
    for (const code of JSON.parse(r.stdout)) assert.ok(allowed.has(code), `seed ${seed}: ${code}`)
  }
})

test('read-only handles read, refuse writes with ERR_READ_ONLY and never create a file', (t) => {
  const { dir, file, m } = map(t)
  m.set('k', 'v')
  const ro = SharedMap.open(file, { readOnly: true })
  t.after(() => ro.close())
  assert.equal(ro.get('k'), 'v')
  assert.throws(() => ro.set('k', 'w'), { code: 'ERR_READ_ONLY' })
  assert.throws(() => ro.incr('n'), { code: 'ERR_READ_ONLY' })
  assert.throws(() => SharedMap.open(path.join(dir, 'missing'), { readOnly: true }))
  assert.equal(fs.existsSync(path.join(dir, 'missing')), false)
})

test('anonymous maps are shared with a child through fromFd', (t) => {
  const m = SharedMap.anonymous({ max: 10 })
  t.after(() => m.close())
  m.set('from', 'parent')
  const child = `
    const { SharedMap } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const m = SharedMap.fromFd(3)
    m.set('reply', m.get('from') + ' and child')
  `
  const r = spawnSync(process.execPath, ['-e', child], { stdio: ['ignore', 'inherit', 'pipe', m.fd], timeout: 30_000 })
  assert.equal(r.status, 0, String(r.stderr))
  assert.equal(m.get('reply'), 'parent and child')
})

test('use after close() is ERR_CLOSED and pending waits reject with it', async (t) => {
  const { m } = map(t)
  const waiting = m.waitForChange('k')
  m.close()
  await assert.rejects(waiting, { code: 'ERR_CLOSED' })
  assert.throws(() => m.get('k'), { code: 'ERR_CLOSED' })
  assert.throws(() => m.size, { code: 'ERR_CLOSED' })
  m.close()
})

test('argument errors of a map name its path', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'map')
  const map = SharedMap.open(file)
  t.after(() => map.close())
  const cases = [
    () => map.get(42),
    () => map.set('', 1),
    () => map.set('a', 1, { ttl: -1 }),
    () => map.incr('a', 'x'),
    () => map.update('a', 5),
    () => map.watch(7, () => {}),
    () => map.getOrSet('a', () => 1, { timeout: -1 }),
    () => SharedMap.open(file, { max: -1 }),
  ]
  for (const f of cases) {
    let thrown
    try {
      await f() // getOrSet() rejects, the others throw
    } catch (err) {
      thrown = err
    }
    assert.ok(thrown, `${f} throws`)
    assert.match(thrown.code, /^ERR_/)
    assert.ok(thrown.message.startsWith(`${file}: `), thrown.message)
  }
})
