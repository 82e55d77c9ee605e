'use strict'
// Value segments of format 1 (share-object before format 2): refused with a coded error
// that says what to do, and converted in place by `share-object upgrade` /
// SharedObject.upgrade() (src/value/upgrade.rs), with real processes. The race of the
// upgrade with format-1 writers (which this build cannot run) is in the Rust tests
// (`format1_writers_racing_the_upgrade_never_lose_a_write`, emulating their lock protocol).

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { SharedObject } = require('..')
const { FIXTURES, tempDir, spawnFixture, exitOf, waitFor } = require('./helpers.js')
const { readHeader, writeFormat1 } = require('./fixtures/format2.js')

const BIN = path.join(__dirname, '..', 'bin', 'share-object.js')
const UPGRADING = 0x10002

function cli(t, args, timeout = 60_000) {
  const child = spawnFixture(t, path.relative(FIXTURES, BIN), args)
  child.stdin.end()
  child.done = exitOf(child, timeout, `share-object ${args.join(' ')}`).then((r) => ({ ...r, stdout: child.stdoutText, stderr: child.stderrText }))
  return child
}

const formatOf = (file) => fs.readFileSync(file).readUInt32LE(8)

test('a format-1 segment is refused with ERR_UNSUPPORTED_VERSION naming the upgrade, and left as it was', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'old')
  writeFormat1(file, 'from format 1', { seq: 10 })
  const before = fs.readFileSync(file)
  for (const open of [() => SharedObject.open(file), () => SharedObject.open(file, { readOnly: true })]) {
    assert.throws(open, (err) => {
      assert.equal(err.code, 'ERR_UNSUPPORTED_VERSION')
      assert.ok(err.message.includes(`npx share-object upgrade ${file}`), err.message)
      assert.ok(err.message.includes('close every process'), err.message)
      return true
    })
  }
  for (const args of [['read', file], ['info', file], ['write', file, 'x']]) {
    const r = await cli(t, args).done
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /ERR_UNSUPPORTED_VERSION: .*share-object upgrade/)
  }
  assert.deepEqual(fs.readFileSync(file), before)
})

test('share-object upgrade converts a format-1 segment in place: value, version, mode and group are kept', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'old')
  const value = 'kept across the upgrade: ✓ \0 bytes'
  writeFormat1(file, value, { seq: 14, mode: 0o640 })
  const isRoot = process.getuid?.() === 0
  // As root, another group (and owner) shows that they are carried over.
  if (isRoot) fs.chownSync(file, 0, 65534)
  const before = fs.statSync(file)
  const r = await cli(t, ['upgrade', file]).done
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /upgraded to format 2, version 7/)
  const after = fs.statSync(file)
  assert.equal(after.mode & 0o777, 0o640)
  assert.equal(after.gid, before.gid)
  assert.equal(after.uid, before.uid)
  assert.notEqual(after.ino, before.ino, 'a new file took the old one\'s place')
  assert.equal(formatOf(file), 2)
  const obj = SharedObject.open(file, { mode: 0o640 })
  t.after(() => obj.close())
  assert.equal(obj.read(), value)
  assert.equal(obj.version, 7, 'format 1 counted seq / 2 writes')
  obj.write('next')
  assert.equal(obj.version, 8)
  assert.deepEqual(fs.readdirSync(dir), ['old'], 'no temporary file left')
  const again = await cli(t, ['upgrade', file]).done
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, /already format 2 \(version 8\)/)
  if (!isRoot) t.diagnostic('not root: the group kept is the file\'s own (chown needs root)')
})

test('a torn format-1 value is refused (ERR_WRITER_DIED, file unchanged) unless --discard-torn', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'torn')
  writeFormat1(file, 'half a val', { seq: 21 }) // odd: a writer died mid-write
  const before = fs.readFileSync(file)
  const r = await cli(t, ['upgrade', file]).done
  assert.equal(r.code, 1)
  assert.match(r.stderr, /ERR_WRITER_DIED: .*--discard-torn/)
  assert.deepEqual(fs.readFileSync(file), before)
  assert.throws(() => SharedObject.upgrade(file), { code: 'ERR_WRITER_DIED' })
  const done = SharedObject.upgrade(file, { discardTorn: true })
  assert.deepEqual(done, { version: 11, converted: true, discardedTorn: true })
  const obj = SharedObject.open(file)
  t.after(() => obj.close())
  assert.equal(obj.read(), '')
})

test('an upgrade interrupted after marking the old file is refused by openers with a hint, and finished by the next upgrade', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'marked')
  writeFormat1(file, 'marked value', { seq: 6, version: UPGRADING })
  fs.writeFileSync(path.join(dir, '.marked.4242-0badcafe.upgrading'), 'half-built', { mode: 0o600 })
  assert.throws(() => SharedObject.open(file), (err) => err.code === 'ERR_UNSUPPORTED_VERSION' && /interrupted/.test(err.message))
  const r = await cli(t, ['upgrade', file]).done
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(fs.readdirSync(dir), ['marked'], 'the killed run\'s temporary file is gone')
  assert.equal(SharedObject.open(file).read(), 'marked value')
})

test('upgrades SIGKILLed at random moments leave the old file or the new one, never a third thing; the next upgrade finishes', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'big')
  const value = Buffer.alloc(48 << 20, 'v') // large enough that the upgrade takes a while
  value.write('start', 0)
  value.write('end', value.length - 3)
  writeFormat1(file, value, { seq: 40, capacity: value.length })
  const outcomes = { format1: 0, marked: 0, format2: 0 }
  for (let round = 0; round < 8; round++) {
    const child = cli(t, ['upgrade', file])
    await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 150)))
    child.kill('SIGKILL')
    await child.done
    const format = formatOf(file)
    if (format === 2) {
      outcomes.format2++
      break
    }
    assert.ok(format === 1 || format === UPGRADING, `round ${round}: format ${format}`)
    outcomes[format === 1 ? 'format1' : 'marked']++
    // The old file still holds the value, whole.
    const bytes = fs.readFileSync(file)
    assert.ok(bytes.subarray(256, 256 + value.length).equals(value), `round ${round}: the old value changed`)
  }
  if (formatOf(file) !== 2) {
    const r = await cli(t, ['upgrade', file]).done
    assert.equal(r.code, 0, r.stderr)
  }
  assert.deepEqual(fs.readdirSync(dir), ['big'], 'no temporary file left')
  const obj = SharedObject.open(file)
  t.after(() => obj.close())
  assert.ok(obj.readBuffer().equals(value))
  assert.equal(obj.version, 20)
  t.diagnostic(`kills: ${JSON.stringify(outcomes)}`)
})

test('two upgraders at once: one converts, the other finds it done or in use; the value is intact', async (t) => {
  const dir = tempDir(t)
  for (let round = 0; round < 6; round++) {
    const file = path.join(dir, `twice-${round}`)
    writeFormat1(file, `round ${round}`, { seq: 2 * round + 2 })
    const results = await Promise.all([cli(t, ['upgrade', file]).done, cli(t, ['upgrade', file]).done])
    const converted = results.filter((r) => r.code === 0 && /upgraded to format 2/.test(r.stdout))
    assert.equal(converted.length, 1, JSON.stringify(results))
    for (const r of results) {
      assert.ok(r.code === 0 || /ERR_IN_USE/.test(r.stderr), JSON.stringify(r))
    }
    const obj = SharedObject.open(file)
    assert.deepEqual([obj.read(), obj.version], [`round ${round}`, round + 1])
    obj.close()
  }
  assert.equal(fs.readdirSync(dir).filter((n) => n.startsWith('.')).length, 0)
})

test('processes opening the segment while it is upgraded get the upgraded value or ERR_UNSUPPORTED_VERSION, never anything else', async (t) => {
  const dir = tempDir(t)
  for (let round = 0; round < 4; round++) {
    const file = path.join(dir, `raced-${round}`)
    writeFormat1(file, Buffer.alloc(8 << 20, 65 + round), { seq: 8, capacity: 8 << 20 })
    const openers = [0, 1, 2].map(() => spawnFixture(t, 'open-until.js', [file, 20_000]))
    for (const o of openers) await waitFor(() => o.lines.includes('trying'), 20_000, 'an opener')
    // Upgrade while they try (an opener holding the file for a moment makes it ERR_IN_USE).
    let done
    for (let i = 0; i < 200 && !done?.converted; i++) {
      try {
        done = SharedObject.upgrade(file)
      } catch (err) {
        assert.equal(err.code, 'ERR_IN_USE', err.message)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
    assert.ok(done?.converted, 'the upgrade got its turn')
    for (const o of openers) {
      const { code } = await exitOf(o, 30_000, 'an opener')
      assert.equal(code, 0, o.stderrText)
      const last = JSON.parse(o.lines.at(-1))
      assert.deepEqual(last, { length: 8 << 20, first: 65 + round, refusals: last.refusals, codes: ['ERR_UNSUPPORTED_VERSION'].slice(0, last.codes.length) })
    }
    assert.equal(readHeader(file).format, 2)
  }
})
