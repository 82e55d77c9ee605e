'use strict'
// share-object/rate-limit: an express-rate-limit Store over SharedMap. The promise that
// matters — one limit for every worker of a cluster — is tested with a real express app
// under node:cluster over HTTP on 127.0.0.1 (fixtures/rate-limit-cluster.js); the Store
// contract in one process, with express-rate-limit itself where it calls the store.

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const path = require('node:path')
const express = require('express')
const { rateLimit } = require('express-rate-limit')
const { SharedMap } = require('..')
const { ShareObjectStore } = require('share-object/rate-limit')
const { tempDir, spawnFixture, waitFor, exitOf } = require('./helpers.js')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A store on a fresh map, its window set as express-rate-limit would; shut down after the test. */
function store(t, options = {}, windowMs = 60_000) {
  const s = new ShareObjectStore({ path: path.join(tempDir(t), 'limits.map'), ...options })
  s.init({ windowMs })
  t.after(() => s.shutdown())
  return s
}

/** One GET over a new connection (so that cluster's round robin picks the next worker). */
function hit(port, urlPath = '/') {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 10_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode, worker: res.headers['x-worker'], ratelimit: res.headers.ratelimit }))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} on port ${port} timed out`)))
    req.on('error', reject)
  })
}

/** An express app with `limiter` on 127.0.0.1, closed after the test; resolves with its port. */
async function serve(t, limiter, routes = (app) => app.get('/', (req, res) => res.send('ok'))) {
  const app = express()
  app.use(limiter)
  routes(app)
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  t.after(() => new Promise((resolve) => server.close(resolve)))
  return server.address().port
}

test('the limit holds for the whole cluster: the N+1-th request in a window gets 429 whichever worker answers, and the next window admits again', async (t) => {
  const LIMIT = 6
  const WINDOW_MS = 2000
  const WORKERS = 2
  const file = path.join(tempDir(t), 'limits.map')
  // Its own process group, so that the workers die with it even if the test fails.
  const primary = spawnFixture(t, 'rate-limit-cluster.js', [file, WINDOW_MS, LIMIT, WORKERS], { detached: true })
  t.after(() => {
    try {
      process.kill(-primary.pid, 'SIGKILL')
    } catch {}
  })
  const ready = await waitFor(() => primary.lines.find((l) => l.startsWith('{')) || primary.exitCode !== null, 30_000, 'the cluster to listen')
  assert.equal(typeof ready, 'string', `the cluster did not start: ${primary.stderrText}`)
  const { port, workers } = JSON.parse(ready)
  assert.equal(workers.length, WORKERS)

  // The limit, spread over the workers: each of them alone sees fewer than LIMIT hits.
  const admitted = []
  let firstAnswered
  for (let i = 0; i < LIMIT; i++) {
    admitted.push(await hit(port))
    firstAnswered ??= performance.now() // the window began before this (at the first hit)
  }
  assert.deepEqual(admitted.map((r) => r.status), Array(LIMIT).fill(200), 'the first LIMIT requests are admitted')
  assert.deepEqual(new Set(admitted.map((r) => r.worker)), new Set(workers.map(String)), 'every worker answered some of them')
  assert.match(admitted.at(-1).ratelimit, /remaining=0/)

  // Over the limit: refused by every worker, until both have refused.
  const refused = []
  while (refused.length < 4 && new Set(refused.map((r) => r.worker)).size < WORKERS) refused.push(await hit(port))
  assert.deepEqual(refused.map((r) => r.status), Array(refused.length).fill(429), 'requests over the limit get 429')
  assert.deepEqual(new Set(refused.map((r) => r.worker)), new Set(workers.map(String)), 'every worker refuses them')

  // The window is fixed by its first hit (refused hits do not extend it): once it is over,
  // requests are admitted again, by every worker, counting from 1.
  await sleep(Math.max(0, firstAnswered + WINDOW_MS + 50 - performance.now()))
  const after = [await hit(port), await hit(port)]
  assert.deepEqual(after.map((r) => r.status), [200, 200], 'a new window admits again')
  assert.deepEqual(new Set(after.map((r) => r.worker)), new Set(workers.map(String)))
  assert.match(after[0].ratelimit, new RegExp(`remaining=${LIMIT - 1}\\b`))

  primary.kill('SIGTERM')
  const { code } = await exitOf(primary, 10_000, 'the cluster to stop')
  assert.equal(code, 0, primary.stderrText)
  assert.equal(primary.stderrText, '', 'express-rate-limit raised no validation error')
})

test('increment counts a client\'s hits and keeps the window of its first hit', async (t) => {
  const s = store(t, {}, 60_000)
  const first = await s.increment('1.2.3.4')
  assert.equal(first.totalHits, 1)
  assert.ok(first.resetTime instanceof Date)
  assert.ok(first.resetTime.getTime() > Date.now() && first.resetTime.getTime() <= Date.now() + 60_000)
  await sleep(250)
  const second = await s.increment('1.2.3.4')
  assert.equal(second.totalHits, 2)
  // Had the second hit restarted the window, 60 s would be left again.
  assert.ok(s.map.getRemainingTTL('rl:1.2.3.4') <= 60_000 - 250)
  assert.ok(second.resetTime.getTime() <= first.resetTime.getTime() + 250)
  assert.equal((await s.increment('5.6.7.8')).totalHits, 1, 'clients count apart')
})

test('a window ends: the count starts again from 1 and get() finds nothing', async (t) => {
  const s = store(t, {}, 150)
  assert.equal((await s.increment('k')).totalHits, 1)
  assert.equal((await s.increment('k')).totalHits, 2)
  await waitFor(() => s.map.getRemainingTTL('rl:k') === 0, 10_000, 'the window to end')
  assert.equal(await s.get('k'), undefined)
  assert.equal((await s.increment('k')).totalHits, 1)
})

test('get() reports hits and reset time without counting or moving the window', async (t) => {
  const s = store(t, { updateAgeOnGet: true, ttl: 60_000 }, 60_000)
  assert.equal(await s.get('k'), undefined)
  await s.increment('k')
  await sleep(250)
  const info = await s.get('k')
  assert.equal(info.totalHits, 1)
  assert.ok(info.resetTime instanceof Date)
  assert.ok(s.map.getRemainingTTL('rl:k') <= 60_000 - 250, 'get() did not refresh the window, even with updateAgeOnGet')
  assert.equal((await s.get('k')).totalHits, 1)
})

test('decrement takes one hit back, never below 0, keeps the window, and creates nothing', async (t) => {
  const s = store(t, {}, 60_000)
  await s.increment('k')
  await s.increment('k')
  await sleep(250)
  await s.decrement('k')
  assert.equal((await s.get('k')).totalHits, 1)
  assert.ok(s.map.getRemainingTTL('rl:k') <= 60_000 - 250, 'the window stays')
  await s.decrement('k')
  await s.decrement('k')
  assert.equal((await s.get('k')).totalHits, 0)
  await s.decrement('missing')
  assert.equal(s.map.has('rl:missing'), false)
  assert.equal((await s.increment('k')).totalHits, 1)
})

test('resetKey and resetAll forget hits; resetAll keeps to its prefix', async (t) => {
  const map = SharedMap.open(path.join(tempDir(t), 'limits.map'))
  t.after(() => map.close())
  const api = new ShareObjectStore({ map, prefix: 'api:' })
  const login = new ShareObjectStore({ map, prefix: 'login:' })
  api.init({ windowMs: 60_000 })
  login.init({ windowMs: 60_000 })
  await api.increment('a')
  await api.increment('b')
  await login.increment('a')
  map.set('other', 'kept')
  await api.resetKey('a')
  assert.equal(await api.get('a'), undefined)
  assert.equal((await api.get('b')).totalHits, 1)
  await api.resetAll()
  assert.equal(await api.get('b'), undefined)
  assert.equal((await login.get('a')).totalHits, 1, "another limiter's counts stay")
  assert.equal(map.get('other'), 'kept')
  await api.shutdown()
  assert.equal(map.closed, false, 'a map passed in stays open')
})

test('a store with the prefix "" resets the whole map', async (t) => {
  const s = store(t, { prefix: '' })
  await s.increment('a')
  s.map.set('b', 1)
  await s.resetAll()
  assert.equal(s.map.size, 0)
})

test('through express-rate-limit: skipped failed requests are taken back (decrement), the limit holds', async (t) => {
  const s = new ShareObjectStore({ path: path.join(tempDir(t), 'limits.map') })
  t.after(() => s.shutdown())
  const limiter = rateLimit({ windowMs: 60_000, limit: 2, skipFailedRequests: true, standardHeaders: 'draft-7', legacyHeaders: false, store: s })
  const port = await serve(t, limiter, (app) => {
    app.get('/ok', (req, res) => res.send('ok'))
    app.get('/fail', (req, res) => res.status(500).send('no'))
  })
  assert.equal(s.windowMs, 60_000, 'init() took express-rate-limit\'s window')
  for (let i = 0; i < 3; i++) assert.equal((await hit(port, '/fail')).status, 500)
  // The failed requests were counted, then taken back once each response finished.
  await waitFor(() => s.map.peek('rl:127.0.0.1') === 0, 10_000, 'the failed hits to be taken back')
  assert.equal((await hit(port, '/ok')).status, 200)
  assert.equal((await hit(port, '/ok')).status, 200)
  assert.equal((await hit(port, '/ok')).status, 429)
  // limiter.resetKey is the store's: the client may come again.
  await limiter.resetKey('127.0.0.1')
  assert.equal((await hit(port, '/ok')).status, 200)
})

test('a full map makes room by purging expired counters', async (t) => {
  const s = store(t, { maxSize: 2048 }, 1000)
  let n = 0
  await assert.rejects(async () => {
    while (n < 10_000) await s.increment(`client-${n++}`)
  }, { code: 'ERR_MAP_FULL' })
  const full = n - 1
  assert.ok(full > 10, `the map held ${full} counters`)
  await waitFor(() => s.map.getRemainingTTL('rl:client-0') === 0, 10_000, 'the counters to expire')
  await waitFor(() => s.map.getRemainingTTL(`rl:client-${full - 1}`) === 0, 10_000, 'the counters to expire')
  assert.equal((await s.increment('new-client')).totalHits, 1)
})

test('increment before init() and a bad window are refused with a code', async (t) => {
  const s = new ShareObjectStore({ path: path.join(tempDir(t), 'limits.map') })
  t.after(() => s.shutdown())
  await assert.rejects(s.increment('k'), { code: 'ERR_INVALID_STATE', message: /init/ })
  assert.throws(() => s.init({ windowMs: 0 }), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => s.init({ windowMs: Infinity }), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => s.init({ windowMs: '60000' }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => s.init(), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('bad options are refused with a code; shutdown() closes a map the store opened', async (t) => {
  const dir = tempDir(t)
  assert.throws(() => new ShareObjectStore(), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => new ShareObjectStore({}), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.path/ })
  assert.throws(() => new ShareObjectStore({ path: path.join(dir, 'm'), prefix: 5 }), { code: 'ERR_INVALID_ARG_TYPE', message: /prefix/ })
  assert.throws(() => new ShareObjectStore({ map: {} }), { code: 'ERR_INVALID_ARG_TYPE', message: /SharedMap/ })
  const map = SharedMap.open(path.join(dir, 'lent'))
  t.after(() => map.close())
  assert.throws(() => new ShareObjectStore({ map, maxSize: 1024 }), { code: 'ERR_INVALID_ARG_VALUE', message: /maxSize/ })
  const s = new ShareObjectStore(path.join(dir, 'owned'))
  assert.equal(s.prefix, 'rl:')
  assert.equal(s.localKeys, false)
  await s.shutdown()
  assert.equal(s.map.closed, true)
})

test('import { ShareObjectStore } from "share-object/rate-limit" is the same class', async () => {
  const esm = await import('share-object/rate-limit')
  assert.equal(esm.ShareObjectStore, ShareObjectStore)
  assert.equal(esm.default.ShareObjectStore, ShareObjectStore)
})
