'use strict'
// share-object/keyv: a Keyv storage adapter over SharedMap. First Keyv's own compliance
// suite (@keyv/test-suite, unmodified), run by vitest as Keyv's adapters run it; then what
// the suite does not cover: other processes, the map's own expiry, namespaces on one
// file, the many-key forms' results, errors, cacheable on top.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Keyv } = require('keyv')
const { Cacheable } = require('cacheable')
const { SharedMap } = require('..')
const { KeyvShareObject } = require('share-object/keyv')
const { FIXTURES, tempDir, spawnFixture, waitFor, exitOf, runFixture } = require('./helpers.js')

const ROOT = path.join(__dirname, '..')

/** A Keyv over a store on a fresh map; the store is disconnected after the test. */
function keyvOn(t, storeOptions = {}, keyvOptions = {}) {
  const file = path.join(tempDir(t), 'cache.map')
  const store = new KeyvShareObject({ path: file, ...storeOptions })
  t.after(() => store.disconnect())
  return { file, store, keyv: new Keyv({ store, ...keyvOptions }) }
}

/** Runs Keyv ops in another process (fixtures/keyv-op.js); resolves with their results. */
async function inChild(t, file, namespace, ops) {
  const r = await runFixture(t, 'keyv-op.js', [file, namespace ?? '-', JSON.stringify(ops)])
  assert.equal(r.code, 0, `keyv-op failed: ${r.stderr}`)
  return JSON.parse(r.stdout).results
}

test("Keyv's compliance suite (@keyv/test-suite, unmodified, run by vitest) passes, iterator tests included", async (t) => {
  const dir = tempDir(t)
  const report = path.join(dir, 'vitest.json')
  const vitest = path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs')
  const args = ['run', '--config', path.join(__dirname, 'vitest.config.mjs'), '--reporter=default', '--reporter=json', `--outputFile.json=${report}`]
  // Its own process group: vitest's workers die with it if this test fails.
  const child = spawnFixture(t, path.relative(FIXTURES, vitest), args, {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, KEYV_SUITE_DIR: dir, NO_COLOR: '1', FORCE_COLOR: '0' },
  })
  t.after(() => {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {}
  })
  const { code } = await exitOf(child, 180_000, 'vitest to run the Keyv suite')
  const output = `${child.stdoutText}\n${child.stderrText}`.slice(-4000)
  assert.equal(code, 0, output)
  const result = JSON.parse(fs.readFileSync(report, 'utf8'))
  assert.equal(result.numFailedTests, 0, output)
  assert.equal(result.numPendingTests + result.numTodoTests, 0, 'no suite test was skipped')
  assert.ok(result.numTotalTests >= 42, `the suite ran ${result.numTotalTests} tests`)
  assert.equal(result.numPassedTests, result.numTotalTests)
  const passed = result.testResults.flatMap((file) => file.assertionResults).filter((a) => a.status === 'passed').map((a) => a.title)
  for (const title of ['iterator() iterates over all values', "iterator() doesn't yield values from other namespaces", 'namespaced clear only clears current namespace', '.deleteMany([keys]) should delete multiple key', 'value can be a buffer']) {
    assert.ok(passed.includes(title), `"${title}" passed`)
  }
})

test('a value set through Keyv in one process is read, iterated and deleted through Keyv in another', async (t) => {
  const { file, keyv } = keyvOn(t)
  await keyv.set('user:1', { name: 'Ada', tags: ['x'] })
  await keyv.set('n', 42)
  const [seen, n, has, entries] = await inChild(t, file, 'keyv', [['get', 'user:1'], ['get', 'n'], ['has', 'n'], ['entries']])
  assert.deepEqual(seen, { name: 'Ada', tags: ['x'] })
  assert.equal(n, 42)
  assert.equal(has, true)
  assert.deepEqual(entries, [['n', 42], ['user:1', { name: 'Ada', tags: ['x'] }]])
  const [set, deleted] = await inChild(t, file, 'keyv', [['set', 'from-child', 'c'], ['delete', 'n']])
  assert.deepEqual([set, deleted], [true, true])
  assert.equal(await keyv.get('from-child'), 'c')
  assert.equal(await keyv.get('n'), undefined)
})

test('a ttl expires the entry in the map itself, for every process', async (t) => {
  const { file, store, keyv } = keyvOn(t)
  await keyv.set('short', 'v', 150)
  await keyv.set('long', 'v', 60_000)
  const left = store.map.getRemainingTTL('keyv:short')
  assert.ok(left > 0 && left <= 150, `${left} ms left`)
  assert.ok(store.map.getRemainingTTL('keyv:long') > 150)
  await waitFor(() => !store.map.has('keyv:short'), 10_000, 'the entry to expire')
  assert.equal(store.map.purgeStale(), 1, 'the expired entry was still there to purge: expiry is the map\'s, not only Keyv\'s')
  const [short, long] = await inChild(t, file, 'keyv', [['get', 'short'], ['get', 'long']])
  assert.deepEqual([short, long], [null, 'v'])
})

test("an entry Keyv sets without a ttl gets the store's ttl (the map's); Keyv's own ttl wins", async (t) => {
  const { store, keyv } = keyvOn(t, { ttl: 60_000 })
  await keyv.set('a', 1)
  const left = store.map.getRemainingTTL('keyv:a')
  assert.ok(left > 0 && left <= 60_000, `${left} ms left`)
  const withTtl = new Keyv({ store, ttl: 1000 })
  await withTtl.set('b', 1)
  assert.ok(store.map.getRemainingTTL('keyv:b') <= 1000)
  await keyv.set('c', 1, 0) // Keyv: 0 is "no ttl", then the store's applies
  assert.ok(store.map.getRemainingTTL('keyv:c') <= 60_000)
})

test('namespaces share one file: clear() in one process empties only its namespace', async (t) => {
  const { file } = keyvOn(t)
  const users = new Keyv({ store: new KeyvShareObject({ path: file }), namespace: 'users' })
  const pages = new Keyv({ store: new KeyvShareObject({ path: file }), namespace: 'pages' })
  t.after(() => Promise.all([users.disconnect(), pages.disconnect()]))
  await users.set('1', 'u1')
  await users.set('2', 'u2')
  await pages.set('1', 'p1')
  assert.deepEqual([await users.get('1'), await pages.get('1')], ['u1', 'p1'])
  await inChild(t, file, 'users', [['clear']])
  assert.deepEqual([await users.get('1'), await users.get('2'), await pages.get('1')], [undefined, undefined, 'p1'])
  const [entries] = await inChild(t, file, 'pages', [['entries']])
  assert.deepEqual(entries, [['1', 'p1']])
})

test('without a namespace, clear() empties the whole map', async (t) => {
  const { store, keyv } = keyvOn(t, {}, { namespace: '' })
  assert.equal(store.namespace, undefined)
  store.map.set('other', 'x')
  await keyv.set('k', 'v')
  assert.equal(store.map.get('k') !== undefined, true, 'no prefix without a namespace')
  await keyv.clear()
  assert.equal(store.map.size, 0)
})

test('keyv.iterator() is offered (the store names an iterable dialect) and keeps to the namespace', async (t) => {
  const { store, keyv } = keyvOn(t)
  assert.equal(typeof keyv.iterator, 'function')
  assert.equal(store.opts.dialect, 'sqlite')
  assert.match(store.opts.url, /^file:\/\//)
  store.map.set('elsewhere:x', 'not keyv')
  await keyv.set('a', 1)
  await keyv.set('b', 2)
  const seen = []
  for await (const entry of keyv.iterator()) seen.push(entry)
  assert.deepEqual(seen.sort(), [['a', 1], ['b', 2]])
})

test('the many-key forms: setMany reports each entry, getMany and hasMany one result per key, deleteMany whether any existed', async (t) => {
  const { store, keyv } = keyvOn(t)
  assert.deepEqual(await keyv.setMany([{ key: 'a', value: 1 }, { key: 'b', value: 'two', ttl: 60_000 }]), [true, true])
  assert.ok(store.map.getRemainingTTL('keyv:b') <= 60_000)
  assert.deepEqual(await keyv.get(['a', 'missing', 'b']), [1, undefined, 'two'])
  assert.deepEqual(await keyv.has(['a', 'missing']), [true, false])
  assert.equal(await keyv.delete(['a', 'missing']), true)
  assert.equal(await keyv.delete(['a', 'missing']), false)
  assert.deepEqual(await keyv.get(['a', 'b']), [undefined, 'two'])
})

test('a key the map refuses fails the set with a coded error, which Keyv emits; the other entries of a setMany are stored', async (t) => {
  const { store, keyv } = keyvOn(t)
  const errors = []
  keyv.on('error', (err) => errors.push(err))
  const long = 'k'.repeat(1100)
  assert.equal(await keyv.set(long, 'v'), false)
  assert.equal(errors.at(-1).code, 'ERR_INVALID_ARG_VALUE')
  assert.match(errors.at(-1).message, /1024 bytes/)
  assert.equal(await keyv.set('neg', 'v', -5), false)
  assert.equal(errors.at(-1).code, 'ERR_OUT_OF_RANGE')
  assert.deepEqual(await keyv.setMany([{ key: 'ok1', value: 1 }, { key: long, value: 2 }, { key: 'ok2', value: 3 }]), [true, false, true])
  assert.equal(errors.at(-1).code, 'ERR_INVALID_ARG_VALUE')
  assert.deepEqual(await keyv.get(['ok1', 'ok2']), [1, 3])
  await assert.rejects(store.set(long, 'v'), { code: 'ERR_INVALID_ARG_VALUE' })
  // Used without Keyv (nobody listens for 'error'), setMany throws once all were tried.
  const bare = new KeyvShareObject({ map: store.map })
  await assert.rejects(bare.setMany([{ key: 'x', value: 'x' }, { key: long, value: 'y' }]), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.equal(store.map.get('x'), 'x')
})

test('a full map makes room by purging expired entries', async (t) => {
  const { store, keyv } = keyvOn(t, { maxSize: 4096 })
  let n = 0
  while (n < 10_000 && (await keyv.set(`k${n}`, 'x'.repeat(40), 1000))) n++
  assert.ok(n > 10 && n < 10_000, `the map held ${n} entries`)
  await waitFor(() => store.map.getRemainingTTL(`keyv:k${n - 1}`) === 0, 10_000, 'the entries to expire')
  const bigger = 'y'.repeat(60) // needs more room than any expired entry had
  assert.equal(await keyv.set('fresh', bigger), true)
  assert.equal(await keyv.get('fresh'), bigger)
})

test("with Keyv's serialisation off, values go through the map's codec ('v8' keeps Dates and Maps)", async (t) => {
  const { keyv } = keyvOn(t, { codec: 'v8' }, { serialize: undefined, deserialize: undefined })
  const value = { at: new Date(0), tags: new Map([['a', 1]]), bytes: Buffer.from('hi') }
  await keyv.set('k', value)
  const back = await keyv.get('k')
  assert.deepEqual(back.at, value.at)
  assert.deepEqual(back.tags, value.tags)
  assert.deepEqual(Buffer.from(back.bytes), value.bytes)
})

test('cacheable on top: one cache for every process (get, getOrSet)', async (t) => {
  const { file, store } = keyvOn(t, { max: 1000 })
  const cache = new Cacheable({ primary: new Keyv({ store }), ttl: '1m' })
  await cache.set('user:1', { name: 'Ada' })
  assert.deepEqual(await cache.getOrSet('report', async () => 'computed'), 'computed')
  const [user, report] = await inChild(t, file, 'keyv', [['get', 'user:1'], ['get', 'report']])
  assert.deepEqual(user, { name: 'Ada' })
  assert.equal(report, 'computed')
  await inChild(t, file, 'keyv', [['set', 'from-child', 7]])
  assert.equal(await cache.get('from-child'), 7)
  assert.equal(await cache.getOrSet('report', async () => 'recomputed'), 'computed')
})

test('disconnect() closes a map the store opened, not one passed in', async (t) => {
  const dir = tempDir(t)
  const owned = new KeyvShareObject(path.join(dir, 'owned'))
  await new Keyv({ store: owned }).disconnect()
  assert.equal(owned.map.closed, true)
  await assert.rejects(owned.get('k'), { code: 'ERR_CLOSED' })
  const map = SharedMap.open(path.join(dir, 'lent'))
  t.after(() => map.close())
  const lent = new KeyvShareObject({ map })
  await new Keyv({ store: lent }).set('k', 'v')
  await lent.disconnect()
  assert.equal(map.closed, false)
  assert.equal(typeof map.get('keyv:k'), 'string', 'Keyv stores its serialised string as it is')
})

test('bad options are refused with a code', (t) => {
  const dir = tempDir(t)
  assert.throws(() => new KeyvShareObject(), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => new KeyvShareObject({ max: 5 }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.path/ })
  assert.throws(() => new KeyvShareObject({ map: new Map() }), { code: 'ERR_INVALID_ARG_TYPE', message: /SharedMap/ })
  assert.throws(() => new KeyvShareObject({ path: path.join(dir, 'm'), max: -1 }), { code: 'ERR_OUT_OF_RANGE' })
  const map = SharedMap.open(path.join(dir, 'lent'))
  t.after(() => map.close())
  assert.throws(() => new KeyvShareObject({ map, path: path.join(dir, 'other') }), { code: 'ERR_INVALID_ARG_VALUE', message: /path/ })
})

test('import { KeyvShareObject } from "share-object/keyv" is the same class', async () => {
  const esm = await import('share-object/keyv')
  assert.equal(esm.KeyvShareObject, KeyvShareObject)
  assert.equal(esm.default.KeyvShareObject, KeyvShareObject)
})
