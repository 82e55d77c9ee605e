// `npm run demo`: the article's two-terminal demo in one command. Starts shareRead.js in a
// temporary folder, runs shareWrite.js there, and prints what the reader saw.
'use strict'
const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'share-object-demo-'))
const env = { ...process.env, SHARE_OBJECT_PATH: path.join(dir, 'share-data') }
const reader = spawn(process.execPath, [path.join(__dirname, 'shareRead.js')], { cwd: dir, env })

let wrote = false
const deadline = setTimeout(() => finish(new Error('the reader did not see the value within 10 s')), 10_000)

console.log(`segment: ${env.SHARE_OBJECT_PATH}`)
reader.stdout.setEncoding('utf8')
reader.stdout.on('data', (chunk) => {
  for (const line of chunk.split('\n').slice(0, -1)) {
    console.log(`reader: ${JSON.stringify(line)}`)
    if (!wrote) {
      // The reader is up: write from a second process, as terminal B would.
      wrote = true
      const out = execFileSync(process.execPath, [path.join(__dirname, 'shareWrite.js')], { cwd: dir, env, encoding: 'utf8' })
      console.log(`writer: ${out.trim()}`)
    } else if (line === 'Hello World!') {
      finish()
    }
  }
})
reader.stderr.pipe(process.stderr)
reader.on('exit', (code, signal) => {
  if (!finished) finish(new Error(`the reader exited early (${code ?? signal})`))
})

let finished = false
function finish(err) {
  finished = true
  clearTimeout(deadline)
  reader.kill()
  fs.rmSync(dir, { recursive: true, force: true })
  if (err) {
    console.error(`demo failed: ${err.message}`)
    process.exitCode = 1
  } else {
    console.log('demo: the reader process saw the writer process\'s value through shared memory')
  }
}
