// A cluster HTTP server whose workers share one cache and one rate limit, without Redis.
//
//   node examples/cluster-cache.js            serves on http://127.0.0.1:3000 until Ctrl-C
//   node examples/cluster-cache.js --demo     starts, sends itself a few requests, stops
//   options: --port N (or $PORT; 0 picks a free port), --workers N (or $WORKERS, default 2),
//            --demo (or CLUSTER_CACHE_DEMO=1)
//
// GET /report?id=7 answers after a slow computation (half a second), cached for 30 s in a
// SharedMap: getOrSet() runs it once however many workers miss the key at the same time,
// the others wait for its result. Every client gets 10 requests per 10 s, counted for the
// whole cluster by share-object/rate-limit's store (the one express-rate-limit takes:
// `rateLimit({ windowMs, limit, store })`; here called directly, so that the example needs
// nothing but share-object).
'use strict'
const cluster = require('node:cluster')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { SharedMap } = require('share-object')
const { ShareObjectStore } = require('share-object/rate-limit')

const LIMIT = 10
const WINDOW_MS = 10_000
const CACHE_TTL_MS = 30_000

function option(name, env) {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? process.argv[at + 1] : process.env[env]
}

if (cluster.isPrimary) primary()
else worker()

function primary() {
  const demo = process.argv.includes('--demo') || process.env.CLUSTER_CACHE_DEMO === '1'
  const port = Number(option('port', 'PORT') ?? 3000)
  const workers = Number(option('workers', 'WORKERS') ?? 2)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`--port must be 0 to 65535, not ${port}`)
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`--workers must be a positive integer, not ${workers}`)
  // The maps live in a folder of this run, removed on the way out.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-cache-'))
  let stopping = false
  const stop = (code = 0) => {
    if (stopping) return
    stopping = true
    for (const w of Object.values(cluster.workers)) w.kill()
    fs.rmSync(dir, { recursive: true, force: true })
    process.exit(code)
  }
  process.on('SIGINT', () => stop(0))
  process.on('SIGTERM', () => stop(0))
  cluster.on('exit', (w, code, signal) => {
    if (stopping) return
    console.error(`worker ${w.process.pid} exited (${code ?? signal}); stopping`)
    stop(1)
  })

  const env = { CLUSTER_CACHE_DIR: dir, CLUSTER_CACHE_PORT: String(port) }
  const listening = new Set()
  for (let i = 0; i < workers; i++) cluster.fork(env)
  cluster.on('message', (w, message) => {
    if (message?.listening === undefined) return
    listening.add(w.process.pid)
    if (listening.size < workers) return
    const url = `http://127.0.0.1:${message.listening}`
    console.log(`${workers} workers (${[...listening].join(', ')}) serve ${url}/report?id=7${demo ? '' : ' — Ctrl-C stops'}`)
    if (demo) {
      runDemo(url, dir).then(
        () => stop(0),
        (err) => {
          console.error(err)
          stop(1)
        },
      )
    }
  })
}

function worker() {
  // Ctrl-C reaches every process of the terminal's group: the primary stops the workers.
  process.on('SIGINT', () => {})
  const dir = process.env.CLUSTER_CACHE_DIR
  const cache = SharedMap.open(path.join(dir, 'cache.map'), { max: 10_000 })
  const limits = new ShareObjectStore({ path: path.join(dir, 'limits.map') })
  limits.init({ windowMs: WINDOW_MS })

  // Stands for a slow query or a heavy render; counts how often it really runs.
  async function slowReport(id) {
    cache.incr('stats:computations')
    await new Promise((resolve) => setTimeout(resolve, 500))
    return { id, total: id * 1000 + 7, computedBy: process.pid, at: new Date().toISOString() }
  }

  // getOrSet() makes the processes wait for one computation; this makes the requests of
  // one process wait for its own (a handle's concurrent getOrSet() calls each compute).
  const inflight = new Map()
  function cached(key, compute) {
    let pending = inflight.get(key)
    if (!pending) {
      pending = cache.getOrSet(key, compute, { ttl: CACHE_TTL_MS }).finally(() => inflight.delete(key))
      inflight.set(key, pending)
    }
    return pending
  }

  const server = http.createServer(async (req, res) => {
    try {
      const { totalHits, resetTime } = await limits.increment(req.socket.remoteAddress)
      res.setHeader('x-worker', process.pid)
      res.setHeader('ratelimit-remaining', Math.max(0, LIMIT - totalHits))
      if (totalHits > LIMIT) {
        res.writeHead(429, { 'retry-after': Math.ceil((resetTime - Date.now()) / 1000) })
        res.end('Too many requests\n')
        return
      }
      const url = new URL(req.url, 'http://localhost')
      const id = Number(url.searchParams.get('id'))
      if (url.pathname !== '/report' || !Number.isInteger(id)) {
        res.writeHead(404).end('Try /report?id=7\n')
        return
      }
      const report = await cached(`report:${id}`, () => slowReport(id))
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(`${JSON.stringify({ ...report, servedBy: process.pid })}\n`)
    } catch (err) {
      res.writeHead(500).end(`${err.code ?? 'error'}: ${err.message}\n`)
    }
  })
  server.on('error', (err) => {
    console.error(err.code === 'EADDRINUSE' ? `port ${process.env.CLUSTER_CACHE_PORT} is in use: pass --port N (0: any free port)` : err.message)
    process.exit(1)
  })
  server.listen(Number(process.env.CLUSTER_CACHE_PORT), '127.0.0.1', () => {
    process.send({ listening: server.address().port })
  })
}

// --demo: what a person would try with curl, then stop.
async function runDemo(url, dir) {
  const get = (p) =>
    new Promise((resolve, reject) => {
      // A connection per request, so that the cluster hands each to the next worker.
      http.get(`${url}${p}`, { agent: false, timeout: 10_000 }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode, worker: res.headers['x-worker'], body }))
      }).on('error', reject)
    })
  console.log('4 requests at once for /report?id=7, which nobody has computed yet:')
  const first = await Promise.all([1, 2, 3, 4].map(() => get('/report?id=7')))
  for (const r of first) {
    const report = JSON.parse(r.body)
    console.log(`  ${r.status} from worker ${r.worker}: total ${report.total}, computed by ${report.computedBy}`)
  }
  const stats = SharedMap.open(path.join(dir, 'cache.map'), { create: false })
  console.log(`  computations: ${stats.get('stats:computations')}`)
  stats.close()
  console.log(`more requests from the same client (limit ${LIMIT} per ${WINDOW_MS / 1000} s for the whole cluster):`)
  const statuses = []
  for (let i = 0; i < 8; i++) {
    const r = await get('/report?id=7')
    statuses.push(`${r.status} (worker ${r.worker})`)
  }
  console.log(`  ${statuses.join(', ')}`)
}
