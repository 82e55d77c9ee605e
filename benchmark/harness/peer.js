'use strict'
// Starts a benchmark peer (`node benchmark/peers/<name>.js ...args`) and talks to it over
// its stdout: every peer prints one JSON object per line ({"ready":true}, a result, or
// {"error":...}). Every wait here has a deadline; the child is tracked so it is killed
// (by pid) even if the benchmark fails. Closing the child's stdin tells it to exit.

const { spawn } = require('node:child_process')
const path = require('node:path')
const { trackChild } = require('./cleanup.js')

const PEERS = path.join(__dirname, '..', 'peers')

/**
 * Spawns a peer. `options.ipc` adds an IPC channel (process.send); `options.nodeArgs` are
 * flags for node itself (e.g. --expose-gc).
 */
function spawnPeer(name, args = [], options = {}) {
  const stdio = ['pipe', 'pipe', 'pipe']
  if (options.ipc) stdio.push('ipc')
  const script = path.join(PEERS, `${name}.js`)
  const child = trackChild(spawn(process.execPath, [...(options.nodeArgs || []), script, ...args.map(String)], { stdio }))
  return new Peer(name, child)
}

class Peer {
  #sent = 0 // commands sent (their ids)

  constructor(name, child) {
    this.name = name
    this.child = child
    this.pid = child.pid
    this.messages = []
    this.stderr = ''
    this.exit = null // { code, signal } once the process exited
    this.outputDone = false // stdout closed: every line it printed has been read
    this.listeners = new Set()
    this.#readLines()
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      this.stderr += chunk
    })
    // Not 'close': it never comes for a child whose IPC channel the parent disconnected.
    child.on('exit', (code, signal) => {
      this.exit = { code, signal }
      this.#notify()
    })
    child.stdout.on('close', () => {
      this.outputDone = true
      this.#notify()
    })
    child.on('error', (err) => {
      this.spawnError = err
      this.#notify()
    })
  }

  #readLines() {
    let partial = ''
    this.child.stdout.setEncoding('utf8')
    this.child.stdout.on('data', (chunk) => {
      const parts = (partial + chunk).split('\n')
      partial = parts.pop()
      for (const line of parts) if (line.trim()) this.messages.push(parseLine(this.name, line))
      this.#notify()
    })
  }

  #notify() {
    for (const listener of [...this.listeners]) listener()
  }

  /** Resolves with the first message for which `match(message)` is true; rejects on exit or after `ms`. */
  message(match, ms, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${this.name}: no ${what} within ${ms} ms${this.stderrNote()}`)), ms)
      const check = () => {
        const found = this.messages.find((m) => m.error === undefined && match(m))
        const failed = this.messages.find((m) => m.error !== undefined)
        if (failed) finish(new Error(`${this.name} failed: ${failed.error}`))
        else if (found) finish(null, found)
        else if (this.spawnError) finish(this.spawnError)
        else if (this.exit && this.outputDone) finish(new Error(`${this.name} exited (${this.exit.code ?? this.exit.signal}) before ${what}${this.stderrNote()}`))
      }
      const finish = (err, value) => {
        clearTimeout(timer)
        this.listeners.delete(check)
        if (err) reject(err)
        else resolve(value)
      }
      this.listeners.add(check)
      check()
    })
  }

  /**
   * Writes `command` as one JSON line to the peer's stdin, with a fresh `id` (the peer
   * answers with lines carrying it); resolves with that id once the line left this process.
   */
  send(command, ms = 10_000) {
    const id = ++this.#sent
    return new Promise((resolve, reject) => {
      if (this.exit) return reject(new Error(`${this.name} exited (${this.exit.code ?? this.exit.signal}) before command ${command.cmd ?? id}${this.stderrNote()}`))
      const timer = setTimeout(() => reject(new Error(`${this.name}: could not send a command within ${ms} ms`)), ms)
      this.child.stdin.write(JSON.stringify({ ...command, id }) + '\n', (err) => {
        clearTimeout(timer)
        if (err) reject(err)
        else resolve(id)
      })
    })
  }

  /** send(command), then the first answer with its id for which `match(answer)` is true, within `ms`. */
  async request(command, ms, what, match = () => true) {
    const id = await this.send(command, ms)
    return this.message((m) => m.id === id && match(m), ms, what)
  }

  /** Resolves once the peer printed {"ready": true}. */
  ready(ms = 10_000) {
    return this.message((m) => m.ready === true, ms, 'ready message')
  }

  /** Calls `fn(err)` once if the peer exits or fails to spawn; returns a function that cancels it. */
  onExit(fn) {
    const check = () => {
      if (!this.exit && !this.spawnError) return
      this.listeners.delete(check)
      fn(this.spawnError || new Error(`${this.name} exited (${this.exit.code ?? this.exit.signal})${this.stderrNote()}`))
    }
    this.listeners.add(check)
    return () => this.listeners.delete(check)
  }

  /** Asks the peer to exit (closes its stdin), waits up to `ms`, then SIGKILLs it by pid. */
  async stop(ms = 2_000) {
    if (this.exit) return this.exit
    this.child.stdin.end()
    if (!(await this.#exitWithin(ms))) {
      this.child.kill('SIGKILL')
      if (!(await this.#exitWithin(ms))) throw new Error(`${this.name} (pid ${this.pid}) did not exit after SIGKILL within ${ms} ms`)
    }
    return this.exit
  }

  // Resolves true once the process has exited, false if `ms` pass first.
  #exitWithin(ms) {
    return new Promise((resolve) => {
      const done = (value) => {
        clearTimeout(timer)
        this.listeners.delete(check)
        resolve(value)
      }
      const check = () => this.exit && done(true)
      const timer = setTimeout(() => done(false), ms)
      this.listeners.add(check)
      check()
    })
  }

  /** "; stderr: …" (its last 2,000 characters), or nothing if the peer wrote none. */
  stderrNote() {
    const text = this.stderr.trim()
    return text ? `; stderr: ${text.slice(-2000)}` : ''
  }
}

function parseLine(name, line) {
  try {
    return JSON.parse(line)
  } catch {
    return { error: `${name} printed a line that is not JSON: ${line.slice(0, 200)}` }
  }
}

module.exports = { spawnPeer }
