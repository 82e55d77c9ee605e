'use strict'
// What every peer needs: the share-object module, one-JSON-object-per-line output to the
// parent, failures reported as {"error": ...}, and an exit when the parent goes away
// (stdin closes, or the parent pid changes), so no peer outlives the benchmark.

const path = require('node:path')

const shareObject = require(path.join(__dirname, '..', '..'))
const parentPid = process.ppid

/** Prints one JSON line for the parent. */
function print(message) {
  process.stdout.write(JSON.stringify(message) + '\n')
}

/** Reports an error to the parent and exits non-zero. */
function fail(err) {
  print({ error: String((err && err.stack) || err) })
  process.exitCode = 1
  process.stdout.write('', () => process.exit(1))
}

/** Whether the process that spawned this peer is gone (this peer was re-parented). */
function orphaned() {
  return process.ppid !== parentPid
}

/**
 * For event-loop peers: exit when stdin closes (the parent's stop signal, or its death)
 * and, as a backstop, when the peer has been re-parented.
 */
function exitWithParent(onExit = () => {}) {
  const leave = () => {
    onExit()
    process.exit(0)
  }
  process.stdin.on('end', leave)
  process.stdin.on('close', leave)
  process.stdin.resume()
  setInterval(() => orphaned() && leave(), 1_000).unref()
}

process.on('uncaughtException', fail)
process.on('unhandledRejection', fail)

module.exports = { shareObject, print, fail, orphaned, exitWithParent }
