'use strict'
// Every code example in README.md runs as written: each ```js block in a fresh folder where
// `require('share-object')` resolves to this package, and the CLI block line by line.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { tempDir } = require('./helpers.js')

const ROOT = path.join(__dirname, '..')
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')

function blocks(lang) {
  const re = new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g')
  return [...README.matchAll(re)].map((m) => m[1])
}

// The packages that the README's Keyv and express-rate-limit examples use beside
// share-object, as their users have them installed (here: this package's devDependencies).
const EXAMPLE_PEERS = ['keyv', 'cacheable', 'express', 'express-rate-limit']

// A folder in which `require('share-object')` and `npx share-object` find this package.
function sandbox(t) {
  const dir = tempDir(t)
  fs.mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true })
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'share-object'))
  for (const name of EXAMPLE_PEERS) fs.symlinkSync(path.join(ROOT, 'node_modules', name), path.join(dir, 'node_modules', name))
  fs.symlinkSync(path.join(ROOT, 'bin', 'share-object.js'), path.join(dir, 'node_modules', '.bin', 'share-object'))
  return dir
}

/** Runs a command; with `stopAfter`, sends SIGINT (or SIGTERM) after that many ms. */
function run(t, cmd, args, { cwd, stopAfter, signal = 'SIGINT', limit = 30_000 }) {
  return new Promise((resolve, reject) => {
    // Its own process group, so a signal reaches the whole pipeline as Ctrl-C does.
    const child = spawn(cmd, args, { cwd, env: { ...process.env, SHARE_OBJECT_PATH: '' }, detached: true })
    const signalGroup = (sig) => {
      try {
        process.kill(-child.pid, sig)
      } catch {}
    }
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) signalGroup('SIGKILL')
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const stop = stopAfter && setTimeout(() => signalGroup(signal), stopAfter)
    const kill = setTimeout(() => {
      signalGroup('SIGKILL')
      reject(new Error(`${args.join(' ')} ran over ${limit} ms; stderr: ${stderr}`))
    }, limit)
    child.on('exit', (code, sig) => {
      clearTimeout(stop)
      clearTimeout(kill)
      resolve({ code, signal: sig, stdout, stderr })
    })
  })
}

const jsBlocks = blocks('js')

test('the README has code examples', () => {
  assert.ok(jsBlocks.length >= 10, `found ${jsBlocks.length} js blocks`)
})

jsBlocks.forEach((code, i) => {
  const title = code.split('\n').find((l) => l.trim() && !l.startsWith('//'))?.slice(0, 60)
  test(`README example ${i + 1} runs: ${title}`, async (t) => {
    const dir = sandbox(t)
    const file = path.join(dir, `example-${i + 1}.js`)
    fs.writeFileSync(file, code)
    // Examples that run until stopped (a polling reader) get a second and a half.
    const forever = /setInterval\(/.test(code)
    const r = await run(t, process.execPath, [file], { cwd: dir, stopAfter: forever ? 1500 : undefined, signal: 'SIGTERM' })
    assert.equal(r.stderr, '', `example ${i + 1} wrote to stderr`)
    if (forever) assert.equal(r.signal, 'SIGTERM', `example ${i + 1} should still have been running`)
    else assert.equal(r.code, 0, `example ${i + 1} exited ${r.code}`)
    // `console.log(…) // expected` comments state what the example prints: check them.
    let from = 0
    for (const [, expected] of code.matchAll(/console\.log\(.*\)\s*\/\/ (.+)$/gm)) {
      const at = r.stdout.indexOf(expected, from)
      assert.ok(at >= 0, `example ${i + 1} should print ${JSON.stringify(expected)}; printed ${JSON.stringify(r.stdout)}`)
      from = at + expected.length
    }
  })
})

test('the README command-line example runs line by line', async (t) => {
  const cli = blocks('sh').find((b) => b.includes('npx share-object'))
  assert.ok(cli, 'no CLI block')
  const dir = sandbox(t)
  for (const raw of cli.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trim()
    if (!line) continue
    const follows = / watch | --follow/.test(` ${line} `)
    const r = await run(t, 'sh', ['-c', `exec ${line}`], { cwd: dir, stopAfter: follows ? 1500 : undefined })
    // Ctrl-C ends `watch`/`--follow` cleanly (exit 0, tested in cli.test.js); npx then
    // re-raises SIGINT on itself, as npm does, so it may report the signal instead.
    const clean = r.code === 0 || (follows && r.signal === 'SIGINT' && r.stderr === '')
    assert.ok(clean, `${line}: exit ${r.code} ${r.signal ?? ''} ${r.stderr}`)
  }
})
