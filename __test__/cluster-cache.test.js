'use strict'
// examples/cluster-cache.js: runs with `node`, stops by itself with --demo, and on Ctrl-C
// (SIGINT to its whole process group, as a terminal sends it), leaving no worker behind.

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const path = require('node:path')
const { spawnFixture, waitFor, exitOf } = require('./helpers.js')

const EXAMPLE = path.relative(path.join(__dirname, 'fixtures'), path.join(__dirname, '..', 'examples', 'cluster-cache.js'))

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts the example in a process group of its own, killed whole after the test. */
function start(t, args) {
  const child = spawnFixture(t, EXAMPLE, args, { detached: true, cwd: require('node:os').tmpdir() })
  t.after(() => {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {}
  })
  return child
}

/** Waits for the "N workers (pids) serve URL" line; returns { workers, url }. */
async function serving(child) {
  const line = await waitFor(() => child.lines.find((l) => / serve http:/.test(l)) || child.exitCode !== null, 30_000, 'the example to listen')
  assert.equal(typeof line, 'string', `the example did not start: ${child.stderrText}`)
  const [, pids, url] = line.match(/\(([\d, ]+)\) serve (http:\/\/127\.0\.0\.1:\d+)/)
  return { workers: pids.split(', ').map(Number), url }
}

test('cluster-cache --demo: the workers share one computation and one limit, then it stops by itself', async (t) => {
  const child = start(t, ['--demo', '--port', '0'])
  const { workers } = await serving(child)
  assert.equal(workers.length, 2)
  const { code } = await exitOf(child, 60_000, 'the demo to finish')
  assert.equal(code, 0, child.stderrText)
  assert.equal(child.stderrText, '')
  const out = child.stdoutText
  const answers = [...out.matchAll(/200 from worker (\d+): total 7007, computed by (\d+)/g)]
  assert.equal(answers.length, 4, out)
  assert.equal(new Set(answers.map((a) => a[2])).size, 1, 'one worker computed the report for all four')
  assert.equal(new Set(answers.map((a) => a[1])).size, 2, 'both workers answered')
  assert.match(out, /computations: 1\n/)
  const statuses = out.match(/^ {2}(\d{3} \(worker .*)$/m)[1].split(', ').map((s) => Number(s.slice(0, 3)))
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429, 429], 'the limit of 10 counts the requests of both workers')
  await waitFor(() => !workers.some(alive), 10_000, 'the workers to exit')
})

test('cluster-cache serves until Ctrl-C, then stops its workers and exits 0', async (t) => {
  const child = start(t, ['--port', '0', '--workers', '2'])
  const { workers, url } = await serving(child)
  const body = await new Promise((resolve, reject) => {
    http.get(`${url}/report?id=3`, { agent: false, timeout: 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, text }))
    }).on('error', reject)
  })
  assert.equal(body.status, 200)
  assert.equal(JSON.parse(body.text).total, 3007)
  process.kill(-child.pid, 'SIGINT')
  const { code, signal } = await exitOf(child, 10_000, 'the example to stop on SIGINT')
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, child.stderrText)
  await waitFor(() => !workers.some(alive), 10_000, 'the workers to exit')
})
