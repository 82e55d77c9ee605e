'use strict'
// The share-object command line, driven as a user would: spawned commands, stdin, SIGINT.

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const fs = require('node:fs')
const { SharedObject } = require('..')
const { FIXTURES, tempDir, segment, channel, spawnFixture, exitOf, waitFor } = require('./helpers.js')
const { rawWrite } = require('./fixtures/format2.js')

const BIN = path.join(__dirname, '..', 'bin', 'share-object.js')

/** Runs the CLI; resolves with { code, signal, stdout, stderr }. */
function cli(t, args, { input, cwd, timeout = 20_000 } = {}) {
  const child = spawnFixture(t, path.relative(FIXTURES, BIN), args, { cwd })
  child.stdin.end(input)
  child.output = () => ({ stdout: child.stdoutText, stderr: child.stderrText })
  child.done = exitOf(child, timeout, `share-object ${args.join(' ')}`).then((r) => ({ ...r, ...child.output() }))
  return child
}

test('write then read a value; info describes it, also as --json', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  assert.equal((await cli(t, ['write', file, 'hello from the cli']).done).code, 0)
  const r = await cli(t, ['read', file]).done
  assert.deepEqual([r.code, r.stdout], [0, 'hello from the cli\n'])
  const info = await cli(t, ['info', file, '--json']).done
  assert.equal(info.code, 0, info.stderr)
  assert.deepEqual(JSON.parse(info.stdout), { path: file, kind: 'value', format: 2, capacity: 4096, length: 18, type: 'string', version: 1, locked: false })
  const human = await cli(t, ['info', file]).done
  assert.match(human.stdout, /^kind\s+value$/m)
  assert.match(human.stdout, /^version\s+1$/m)
})

test('write - takes the value from stdin, byte for byte', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  const input = 'line one\nline two\n\u00e9\u4f60'
  assert.equal((await cli(t, ['write', file, '-'], { input }).done).code, 0)
  assert.equal(SharedObject.open(file).read(), input)
  assert.equal((await cli(t, ['write', file], { input: 'no dash' }).done).code, 0)
  assert.equal(SharedObject.open(file).read(), 'no dash')
})

test('watch prints each new value written by another process; Ctrl-C ends it with status 130 and no stack', async (t) => {
  const { file, obj } = segment(t)
  obj.write('first')
  const watcher = cli(t, ['watch', file])
  await waitFor(() => watcher.output().stdout.includes('first\n'), 10_000, 'the initial value')
  const writer = cli(t, ['write', file, 'second'])
  assert.equal((await writer.done).code, 0)
  await waitFor(() => watcher.output().stdout.includes('second\n'), 10_000, 'the new value')
  watcher.kill('SIGINT')
  const r = await watcher.done
  assert.deepEqual([r.code, r.signal, r.stderr], [130, null, ''])
  assert.equal(r.stdout, 'first\nsecond\n')
})

test('info reports a value whose writer died mid-write as whole, and a damaged one as unreadable; watch then prints the next write', async (t) => {
  const { file, obj } = segment(t)
  obj.write('before')
  // What a writer killed mid-write leaves (a slot half filled): nothing a reader sees.
  rawWrite(file, 'never committed', 'torn')
  const whole = await cli(t, ['info', file, '--json']).done
  assert.equal(whole.code, 0, whole.stderr)
  assert.deepEqual(JSON.parse(whole.stdout), { path: file, kind: 'value', format: 2, capacity: 4096, length: 6, type: 'string', version: 1, locked: false })
  // Damage: the current word names slot 3.
  const fd = fs.openSync(file, 'r+')
  const current = Buffer.alloc(8)
  fs.readSync(fd, current, 0, 8, 64)
  current.writeBigUInt64LE(current.readBigUInt64LE(0) | 3n)
  fs.writeSync(fd, current, 0, 8, 64)
  fs.closeSync(fd)
  const info = await cli(t, ['info', file, '--json']).done
  assert.equal(info.code, 0, info.stderr)
  assert.deepEqual(JSON.parse(info.stdout), { path: file, kind: 'value', format: 2, capacity: 4096, length: null, unreadable: 'ERR_CORRUPT', version: 1, locked: false })
  const watcher = cli(t, ['watch', file])
  await waitFor(() => watcher.output().stderr.includes('ERR_CORRUPT'), 10_000, 'the report of the damage')
  obj.write('after')
  await waitFor(() => watcher.output().stdout.includes('after\n'), 10_000, 'the next value')
  watcher.kill('SIGINT')
  const r = await watcher.done
  assert.deepEqual([r.code, r.stdout], [130, 'after\n'])
})

test('send and recv move messages through a channel; info shows the queue', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'chan')
  assert.equal((await cli(t, ['send', file, 'one']).done).code, 0)
  assert.equal((await cli(t, ['send', file, '-'], { input: 'two from stdin' }).done).code, 0)
  const info = await cli(t, ['info', file, '--json']).done
  const facts = JSON.parse(info.stdout)
  assert.equal(facts.kind, 'channel')
  assert.ok(facts.queued > 0)
  assert.equal(facts.consumer, false)
  assert.equal((await cli(t, ['recv', file]).done).stdout, 'one\n')
  assert.equal((await cli(t, ['recv', file]).done).stdout, 'two from stdin\n')
  const empty = await cli(t, ['recv', file, '--timeout', '50']).done
  assert.equal(empty.code, 1)
  assert.match(empty.stderr, /^share-object: ERR_TIMEOUT: .*chan/)
})

test('recv --follow keeps printing until Ctrl-C, which ends it with status 130 and no stack', async (t) => {
  const { file, ch } = channel(t)
  const follower = cli(t, ['recv', file, '--follow'])
  await waitFor(() => ch.hasConsumer, 10_000, 'the follower to become the consumer')
  ch.send('a')
  ch.send('b')
  await waitFor(() => follower.output().stdout === 'a\nb\n', 10_000, 'both messages')
  follower.kill('SIGINT')
  const r = await follower.done
  assert.deepEqual([r.code, r.signal, r.stderr], [130, null, ''])
  assert.equal(ch.hasConsumer, false, 'it gave up the consumer role')
})

test('rm removes a segment', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  SharedObject.open(file).close()
  assert.equal((await cli(t, ['rm', file]).done).code, 0)
  assert.equal(fs.existsSync(file), false)
  const again = await cli(t, ['rm', file]).done
  assert.equal(again.code, 1)
  assert.match(again.stderr, /^share-object: ERR_NOT_FOUND: /)
})

test('failures exit 1 with "share-object: <CODE>: <message>"', async (t) => {
  const dir = tempDir(t)
  const foreign = path.join(dir, 'foreign')
  fs.writeFileSync(foreign, 'not a segment at all', { mode: 0o600 })
  const cases = [
    [['read', path.join(dir, 'missing')], 'ERR_NOT_FOUND'],
    [['read', foreign], 'ERR_NOT_A_SEGMENT'],
    [['info', foreign], 'ERR_NOT_A_SEGMENT'],
    [['write', foreign, 'x'], 'ERR_NOT_A_SEGMENT'],
    [['recv', path.join(dir, 'missing')], 'ERR_NOT_FOUND'],
    [['watch', path.join(dir, 'missing')], 'ERR_NOT_FOUND'],
    [['write', path.join(dir, 'no-such-folder', 'seg'), 'x'], 'ENOENT'],
  ]
  for (const [args, code] of cases) {
    const r = await cli(t, args).done
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, new RegExp(`^share-object: ${code}: .+\\n$`), args.join(' '))
    assert.equal(r.stderr.split(code).length, 2, `the code is printed once: ${r.stderr}`)
  }
  assert.equal(fs.readFileSync(foreign, 'utf8'), 'not a segment at all')
})

test('usage errors exit 2; --help on every command exits 0', async (t) => {
  for (const args of [[], ['frobnicate'], ['read'], ['read', 'a', 'b'], ['info', 'x', '--bogus'], ['recv', 'x', '--timeout', 'soon']]) {
    const r = await cli(t, args).done
    assert.equal(r.code, 2, `${args.join(' ')} -> ${r.code}: ${r.stderr}`)
    assert.notEqual(r.stdout + r.stderr, '')
  }
  for (const command of ['info', 'read', 'write', 'watch', 'send', 'recv', 'rm']) {
    const r = await cli(t, [command, '--help']).done
    assert.equal(r.code, 0)
    assert.match(r.stdout, new RegExp(`^Usage: share-object ${command}`))
  }
  const top = await cli(t, ['--help']).done
  assert.equal(top.code, 0)
  assert.match(top.stdout, /Commands:/)
})

test('the package declares the bin so `npx share-object` finds it', () => {
  const pkg = require('../package.json')
  assert.equal(pkg.bin['share-object'], 'bin/share-object.js')
  assert.ok(fs.statSync(BIN).mode & 0o100, 'executable')
  assert.match(fs.readFileSync(BIN, 'utf8'), /^#!\/usr\/bin\/env node/)
})

/** Runs a bash script in its own process group (killed whole at the end); resolves with { code, stdout, stderr }. */
function bash(t, script, { env, timeout = 20_000 } = {}) {
  const { spawn } = require('node:child_process')
  const child = spawn('bash', ['-c', script], { detached: true, env: { ...process.env, BIN, NODE: process.execPath, ...env } })
  const killGroup = () => {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {}
  }
  t.after(killGroup)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup()
      reject(new Error(`bash -c ${JSON.stringify(script)} ran over ${timeout} ms; stderr: ${stderr}`))
    }, timeout)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
  return { child, done }
}

test('rm removes only segments; anything else is refused and left in place, and --force removes it after saying so', async (t) => {
  const dir = tempDir(t)
  const chan = path.join(dir, 'chan')
  require('..').Channel.open(chan).close()
  const foreign = path.join(dir, 'notes.txt')
  fs.writeFileSync(foreign, 'my notes', { mode: 0o600 })
  const link = path.join(dir, 'link')
  fs.symlinkSync(chan, link)
  for (const file of [foreign, link, dir]) {
    const r = await cli(t, ['rm', file]).done
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /^share-object: ERR_NOT_A_SEGMENT: .+\n$/)
    assert.ok(r.stderr.includes(file), r.stderr)
  }
  assert.equal(fs.readFileSync(foreign, 'utf8'), 'my notes')
  assert.equal(fs.readlinkSync(link), chan)
  const dirForced = await cli(t, ['rm', dir, '--force']).done
  assert.equal(dirForced.code, 1, 'a directory is never removed')
  assert.ok(fs.statSync(dir).isDirectory())
  const forced = await cli(t, ['rm', '--force', foreign]).done
  assert.equal(forced.code, 0, forced.stderr)
  assert.match(forced.stderr, /^share-object: rm --force: removing .*notes\.txt, which is not a share-object segment \(.+\)\n$/)
  assert.equal(fs.existsSync(foreign), false)
  assert.equal((await cli(t, ['rm', chan]).done).code, 0)
  assert.equal(fs.existsSync(chan), false)
  assert.equal(fs.readlinkSync(link), chan, 'the symlink itself was never touched')
})

test('recv --follow: a message it cannot write out (the reader went away) stays in the channel, and recv ends with status 0', async (t) => {
  const { file, ch } = channel(t)
  const follower = cli(t, ['recv', file, '--follow'])
  await waitFor(() => ch.hasConsumer, 10_000, 'the follower to become the consumer')
  ch.send('first')
  await waitFor(() => follower.output().stdout === 'first\n', 10_000, 'the first message')
  follower.stdout.destroy() // the reader of its output goes away, as `head -1` does
  await new Promise((resolve) => setImmediate(resolve))
  ch.send('second')
  ch.send('third')
  const r = await follower.done
  assert.deepEqual([r.code, r.signal, r.stderr], [0, null, ''])
  assert.deepEqual(ch.receiveBatch().map(String), ['second', 'third'], 'nothing was lost')
})

for (const command of ['recv --follow', 'watch']) {
  test(`${command} FILE | head -1 prints one line and ends with status 0, without an error`, async (t) => {
    const { file, ch } = channel(t)
    const { obj } = segment(t)
    const target = command === 'watch' ? obj.path : file
    if (command === 'watch') obj.write('first')
    const run = bash(t, `"$NODE" "$BIN" ${command} "$TARGET" | head -1; echo "status \${PIPESTATUS[0]}" >&2`, { env: { TARGET: target } })
    // Keep producing until the pipeline ends: its next write after head exits fails.
    let n = 0
    const feed = setInterval(() => (command === 'watch' ? obj.write(`value ${++n}`) : ch.send(`message ${++n}`)), 10)
    t.after(() => clearInterval(feed))
    const r = await run.done
    clearInterval(feed)
    assert.equal(r.code, 0)
    assert.equal(r.stderr, 'status 0\n')
    assert.equal(r.stdout.split('\n').length, 2, r.stdout)
  })
}

test('no arguments prints the usage on stderr with status 2; --help on stdout with status 0; --version the version', async (t) => {
  const none = await cli(t, []).done
  assert.deepEqual([none.code, none.stdout], [2, ''])
  assert.match(none.stderr, /^Usage: share-object <command>/)
  const help = await cli(t, ['--help']).done
  assert.deepEqual([help.code, help.stderr], [0, ''])
  assert.match(help.stdout, /^Usage: share-object <command>/)
  for (const flag of ['--version', '-v']) {
    const v = await cli(t, [flag]).done
    assert.deepEqual([v.code, v.stdout, v.stderr], [0, `${require('../package.json').version}\n`, ''])
  }
})

test('usage errors are one friendly line on stderr with status 2', async (t) => {
  const cases = [
    [['info', 'x', '--bogus'], /^share-object: info: unknown option --bogus \(see "share-object info --help"\)\n$/],
    [['recv', 'x', '--timeout'], /^share-object: recv: option --timeout needs a value \(see "share-object recv --help"\)\n$/],
    [['info', 'x', '--json=yes'], /^share-object: info: option --json takes no value \(see "share-object info --help"\)\n$/],
    [['read'], /^share-object: read: expected 1 argument \(<path>\), got 0 \(see "share-object read --help"\)\n$/],
    [['frobnicate'], /^share-object: unknown command "frobnicate" \(see "share-object --help"\)\n$/],
    [['send', 'x', 'm', '--capacity', 'big'], /^share-object: --capacity must be a whole number of bytes, got "big"\n$/],
  ]
  for (const [args, expected] of cases) {
    const r = await cli(t, args).done
    assert.equal(r.code, 2, args.join(' '))
    assert.equal(r.stdout, '')
    assert.match(r.stderr, expected)
  }
})

test('write with no value refuses to wait on a terminal, and says what it waits for with "-"', async (t) => {
  const { execFileSync } = require('node:child_process')
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' })
  } catch {
    t.skip('script(1) is not available to give the command a terminal')
    return
  }
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  const refused = bash(t, 'script -qec "$COMMAND" /dev/null < /dev/null', { env: { COMMAND: `"${process.execPath}" "${BIN}" write "${file}"` } })
  const r = await refused.done
  assert.equal(r.code, 2, r.stdout)
  assert.match(r.stdout, /no value given, and standard input is a terminal/)
  assert.equal(fs.existsSync(file), false, 'nothing was written')
  const typed = bash(t, 'printf "typed\\n" | script -qec "$COMMAND" /dev/null', { env: { COMMAND: `"${process.execPath}" "${BIN}" write "${file}" -` } })
  const w = await typed.done
  assert.equal(w.code, 0, w.stdout)
  assert.match(w.stdout, /reading the value from the terminal; end it with Ctrl-D/)
  assert.equal(SharedObject.open(file).read(), 'typed')
})

test('one trailing newline from stdin is dropped (read adds it back), --raw keeps every byte, and send --capacity sizes a new channel', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'seg')
  assert.equal((await cli(t, ['write', file], { input: 'hi\n' }).done).code, 0)
  assert.equal(SharedObject.open(file).read(), 'hi')
  assert.equal((await cli(t, ['write', file, '-'], { input: 'two lines\n\n' }).done).code, 0)
  assert.equal(SharedObject.open(file).read(), 'two lines\n', 'only one newline is dropped')
  assert.equal((await cli(t, ['write', file, '-', '--raw'], { input: 'raw\n' }).done).code, 0)
  assert.equal(SharedObject.open(file).read(), 'raw\n')
  // What read prints, write stores back unchanged.
  const copy = path.join(dir, 'copy')
  const r = await bash(t, '"$NODE" "$BIN" read "$FROM" | "$NODE" "$BIN" write "$TO"', { env: { FROM: file, TO: copy } }).done
  assert.equal(r.code, 0, r.stderr)
  assert.equal(SharedObject.open(copy).read(), 'raw\n')
  const chan = path.join(dir, 'chan')
  assert.equal((await cli(t, ['send', chan, '-', '--capacity', '4096'], { input: 'job\n' }).done).code, 0)
  const info = JSON.parse((await cli(t, ['info', chan, '--json']).done).stdout)
  assert.equal(info.capacity, 4096)
  assert.equal((await cli(t, ['recv', chan]).done).stdout, 'job\n')
})

test('map get|set|delete|incr|keys|info drive a SharedMap shared with this process', async (t) => {
  const { SharedMap } = require('..')
  const dir = tempDir(t)
  const file = path.join(dir, 'cache.map')
  const ok = async (args, input) => {
    const r = await cli(t, ['map', ...args], { input }).done
    assert.equal(r.code, 0, `map ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  await ok(['set', file, 'greeting', 'hello'])
  await ok(['set', file, 'user:1', '{"name":"ada"}', '--json', '--ttl', '60000'])
  await ok(['set', file, 'piped', '-'], 'from stdin')
  const m = SharedMap.open(file)
  t.after(() => m.close())
  assert.deepEqual(m.get('user:1'), { name: 'ada' })
  assert.ok(m.getRemainingTTL('user:1') > 50_000)
  assert.equal(m.get('piped'), 'from stdin')
  m.set('n', 41)
  assert.equal(await ok(['get', file, 'greeting']), 'hello\n')
  assert.equal(await ok(['get', file, 'user:1']), '{"name":"ada"}\n')
  assert.equal(await ok(['incr', file, 'n']), '42\n')
  assert.equal(await ok(['keys', file, '--prefix', 'user:']), 'user:1\n')
  assert.deepEqual((await ok(['keys', file])).trim().split('\n').sort(), ['greeting', 'n', 'piped', 'user:1'])
  assert.equal(JSON.parse(await ok(['info', file, '--json'])).size, 4)
  assert.equal(await ok(['delete', file, 'greeting']), 'true\n')
  assert.equal(m.has('greeting'), false)
  const missing = await cli(t, ['map', 'get', file, 'greeting']).done
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /^share-object: ERR_NOT_FOUND: .*greeting/)
  const usage = await cli(t, ['map', 'frobnicate', file]).done
  assert.equal(usage.code, 2)
  const none = await cli(t, ['map', 'get', path.join(dir, 'absent'), 'k']).done
  assert.equal(none.code, 1)
  assert.equal(fs.existsSync(path.join(dir, 'absent')), false, 'get never creates a map')
})

test('read prints text and bytes as stored, so read | write --raw copies a value that is not UTF-8 exactly; objects print as JSON', async (t) => {
  const dir = tempDir(t)
  const from = path.join(dir, 'from')
  const to = path.join(dir, 'to')
  const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x61, 0x0a, 0xc3])
  const src = SharedObject.open(from)
  t.after(() => src.close())
  src.write(bytes)
  const r = await bash(t, '"$NODE" "$BIN" read "$FROM" | "$NODE" "$BIN" write "$TO" - --raw', { env: { FROM: from, TO: to } }).done
  assert.equal(r.code, 0, r.stderr)
  const copy = SharedObject.open(to)
  t.after(() => copy.close())
  // read adds one newline, which --raw keeps.
  assert.deepEqual(copy.readBuffer(), Buffer.concat([bytes, Buffer.from('\n')]))
  src.write({ a: [1, 'two'] })
  const obj = await cli(t, ['read', from]).done
  assert.deepEqual([obj.code, obj.stdout], [0, '{"a":[1,"two"]}\n'])
})

test('read prints a string stored through the json or v8 codec as the string, numbers as JavaScript writes them; upgrade of a missing path is ERR_NOT_FOUND', async (t) => {
  const dir = tempDir(t)
  const cases = [
    [{ codec: 'json' }, 'hello', 'hello\n'],
    [{ codec: 'v8' }, 'hello', 'hello\n'],
    [undefined, NaN, 'NaN\n'],
    [undefined, -0, '-0\n'],
    [undefined, Infinity, 'Infinity\n'],
  ]
  for (const [i, [options, value, printed]] of cases.entries()) {
    const file = path.join(dir, `v${i}`)
    const obj = SharedObject.open(file, options)
    obj.write(value)
    obj.close()
    const r = await cli(t, ['read', file]).done
    assert.deepEqual([r.code, r.stdout], [0, printed], `${JSON.stringify(options)} ${String(value)}`)
  }
  const upgrade = await cli(t, ['upgrade', path.join(dir, 'missing')]).done
  assert.equal(upgrade.code, 1)
  assert.match(upgrade.stderr, /^share-object: ERR_NOT_FOUND: /)
})
