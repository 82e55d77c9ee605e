'use strict'
// Shared test helpers: a private temp folder per test, child processes that are always
// killed, and waits that always have a deadline.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const FIXTURES = path.join(__dirname, 'fixtures')

/** A fresh temp folder, removed when the test ends (pass the node:test context). */
function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'share-object-test-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Spawns `node fixtures/<name> ...args` and kills it when the test ends, pass or fail.
 * Collects stdout/stderr; `child.lines` holds complete stdout lines.
 */
function spawnFixture(t, name, args = [], options = {}) {
  return spawnProcess(t, process.execPath, [path.join(FIXTURES, name), ...args.map(String)], options)
}

/** Spawns any program as spawnFixture() does: killed when the test ends, output collected. */
function spawnProcess(t, command, args = [], options = {}) {
  const child = spawn(command, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...options,
  })
  child.stdoutText = ''
  child.stderrText = ''
  child.lines = []
  let partial = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stdout.on('data', (chunk) => {
    child.stdoutText += chunk
    const parts = (partial + chunk).split('\n')
    partial = parts.pop()
    child.lines.push(...parts)
    child.emit('lines')
  })
  child.stderr.on('data', (chunk) => {
    child.stderrText += chunk
  })
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }))
    // A program that could not be started: no 'exit' follows.
    child.on('error', (error) => resolve({ code: null, signal: null, error }))
  })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return child
}

/** Resolves when `predicate()` is truthy; rejects after `ms` with `what` in the message. */
function waitFor(predicate, ms, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const tick = () => {
      let value
      try {
        value = predicate()
      } catch (err) {
        reject(err)
        return
      }
      if (value) resolve(value)
      else if (Date.now() - started > ms) reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
      else setTimeout(tick, 5)
    }
    tick()
  })
}

/** Settles as `promise` does; rejects after `ms` with `what` in the message if it has not. */
async function within(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Resolves with the child's exit; kills it and rejects if it runs longer than `ms`. */
async function exitOf(child, ms, what = 'the child to exit') {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`timed out after ${ms} ms waiting for ${what}; stderr: ${child.stderrText}`))
    }, ms)
  })
  try {
    return await Promise.race([child.exited, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Runs a fixture to completion; resolves with { code, signal, stdout, stderr }. */
async function runFixture(t, name, args, options, ms = 30_000) {
  const child = spawnFixture(t, name, args, options)
  const { code, signal } = await exitOf(child, ms, `${name} to finish`)
  return { code, signal, stdout: child.stdoutText, stderr: child.stderrText }
}

/** The number of lines in /proc/self/maps (one per mapping). */
function mapsLines() {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').length
}

/** Whether this process may make a private mount namespace (`unshare -m`) for a tmpfs. */
function canUnshareMounts() {
  return new Promise((resolve) => {
    const probe = spawn('unshare', ['-m', '--propagation', 'private', 'true'])
    const timer = setTimeout(() => {
      probe.kill('SIGKILL')
      resolve(false)
    }, 10_000)
    probe.on('error', () => {
      clearTimeout(timer)
      resolve(false)
    })
    probe.on('exit', (code) => {
      clearTimeout(timer)
      resolve(code === 0)
    })
  })
}

/** A value segment `name` (default "seg") in a fresh temp folder, closed after the test. */
function segment(t, options, name = 'seg') {
  const { SharedObject } = require('..')
  const dir = tempDir(t)
  const file = path.join(dir, name)
  const obj = SharedObject.open(file, options)
  t.after(() => obj.close())
  return { dir, file, obj }
}

/** A channel `name` (default "chan") in a fresh temp folder, closed after the test. */
function channel(t, options, name = 'chan') {
  const { Channel } = require('..')
  const dir = tempDir(t)
  const file = path.join(dir, name)
  const ch = Channel.open(file, options)
  t.after(() => ch.close())
  return { dir, file, ch }
}

module.exports = { FIXTURES, tempDir, segment, channel, spawnFixture, spawnProcess, waitFor, within, exitOf, runFixture, mapsLines, canUnshareMounts }
