'use strict'
// Everything the benchmark must undo, whatever happens: the temp folder it creates, the
// files a measured library creates elsewhere (/dev/shm), and the child processes and
// worker threads it starts. Children are killed by their own pid
// (ChildProcess.kill), never by name. Cleanup runs on normal completion, on an error, on
// SIGINT/SIGTERM, and as a last resort in the 'exit' handler (which must stay synchronous).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const children = new Set()
const workers = new Set()
const folders = new Set()
const files = new Set()
let installed = false

/** A fresh folder under os.tmpdir(), removed by cleanup(). */
function tempFolder() {
  install()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'share-object-bench-'))
  folders.add(dir)
  return dir
}

/**
 * Registers a file the benchmark (or a library it measures) creates outside its temp
 * folder, e.g. a POSIX shared-memory object in /dev/shm: removed by cleanup().
 */
function trackFile(file) {
  install()
  files.add(file)
  return file
}

/** Registers a spawned child: it is SIGKILLed by cleanup() if still running. */
function trackChild(child) {
  install()
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Registers a worker thread: it is terminated by cleanup() if still running. */
function trackWorker(worker) {
  install()
  workers.add(worker)
  worker.once('exit', () => workers.delete(worker))
  return worker
}

/** Kills every tracked child by pid, terminates workers, removes the temp folders and tracked files. */
function cleanup() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  children.clear()
  for (const worker of workers) worker.terminate()
  workers.clear()
  for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true })
  folders.clear()
  for (const file of files) fs.rmSync(file, { force: true })
  files.clear()
}

function install() {
  if (installed) return
  installed = true
  process.on('exit', cleanup)
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
    process.on(signal, () => {
      cleanup()
      process.exit(code)
    })
  }
}

module.exports = { tempFolder, trackFile, trackChild, trackWorker, cleanup }
