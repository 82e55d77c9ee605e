'use strict'

// Cross-runtime smoke: processes of different runtimes (every supported Node line, Bun, Deno;
// runtimes.js) share one segment, channel or map. Each case of cases.cjs runs for every
// ordered pair of different runtimes: the receiver waits in one process, the sender writes
// from another, and the receiver must get exactly what was sent. Runtimes are fetched into
// the cache on first use.

const { test, before } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const path = require('node:path')
const { tempDir, spawnProcess, waitFor, exitOf } = require('../helpers.js')
const { selected, ensureRuntime, runtimeEnv } = require('./runtimes.js')
const cases = require('./cases.cjs')

const PEER = path.join(__dirname, 'peer.cjs')
const TIMEOUT = 20_000 // each wait inside a peer
const runtimes = selected()
const ready = new Map()

before(() => {
  for (const r of runtimes) ready.set(r.name, ensureRuntime(r))
})

function peer(t, runtime, role, index, file, run) {
  const r = ready.get(runtime.name)
  return spawnProcess(t, r.command, r.args(PEER, [role, String(index), file, JSON.stringify(run)]), { env: runtimeEnv() })
}

function describeExit(child, name, exit) {
  return `${name} exited ${exit.error ?? exit.code ?? exit.signal}; stdout: ${child.stdoutText}; stderr: ${child.stderrText}`
}

test('every runtime loads share-object and is the runtime and version it should be', async (t) => {
  for (const runtime of runtimes) {
    const child = peer(t, runtime, 'load', 0, path.join(tempDir(t), 'shared'), {})
    const exit = await exitOf(child, TIMEOUT, `${runtime.name} to load share-object`)
    assert.equal(exit.code, 0, describeExit(child, runtime.name, exit))
    const kind = runtime.name.replace(/\d+$/, '')
    assert.deepEqual(child.lines, [`loaded ${kind} ${runtime.version}`])
  }
})

for (const [index, c] of cases.entries()) {
  for (const sender of runtimes) {
    for (const receiver of runtimes) {
      if (sender === receiver) continue
      test(`${c.name}: ${sender.name} → ${receiver.name}`, async (t) => {
        const file = path.join(tempDir(t), 'shared')
        const run = { token: `${sender.name}→${receiver.name} ${crypto.randomUUID()}`, nonce: crypto.randomInt(1, 2 ** 30), timeout: TIMEOUT }

        const rx = peer(t, receiver, 'receive', index, file, run)
        await waitFor(() => rx.lines.includes('ready') || rx.exitCode !== null, TIMEOUT + 10_000, `${receiver.name} to be ready`)
        assert.ok(rx.lines.includes('ready'), `the receiver (${receiver.name}) failed before waiting: ${rx.stderrText}`)

        const tx = peer(t, sender, 'send', index, file, run)
        const [txExit, rxExit] = await Promise.all([
          exitOf(tx, TIMEOUT + 10_000, `the sender (${sender.name})`),
          exitOf(rx, TIMEOUT + 10_000, `the receiver (${receiver.name})`),
        ])
        assert.equal(txExit.code, 0, describeExit(tx, `the sender (${sender.name})`, txExit))
        assert.equal(rxExit.code, 0, describeExit(rx, `the receiver (${receiver.name})`, rxExit))
        const line = rx.lines.find((l) => l.startsWith('result '))
        assert.ok(line, `the receiver printed no result: ${rx.stdoutText}`)
        assert.equal(JSON.parse(line.slice('result '.length)), c.expected(run))
      })
    }
  }
}
