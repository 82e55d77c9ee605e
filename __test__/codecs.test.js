'use strict'
// Objects as values and messages: the codec option of SharedObject.open and Channel.open
// (lib/codec.js, shared with SharedMap), one test per promise.

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { SharedObject, Channel } = require('..')
const { tempDir, segment, channel, runFixture } = require('./helpers.js')

// A custom codec: JSON text reversed, so that nothing else can read it by accident.
const reversed = {
  name: 'reversed-json',
  encode: (v) => Buffer.from(JSON.stringify(v)).reverse(),
  decode: (b) => JSON.parse(Buffer.from(b).reverse().toString()),
}

const nested = { id: 7, name: 'Ada', tags: ['a', 'b'], grid: [[1, 2], [3, [4, [5]]]], meta: { ok: true, none: null, n: -0.5 } }

test('the default codec keeps strings and bytes as format 1 did, and stores numbers, booleans, null, objects and arrays', (t) => {
  const { obj } = segment(t)
  obj.write('text')
  assert.equal(obj.read(), 'text')
  obj.write(Buffer.from('bytes'))
  assert.equal(obj.read(), 'bytes', 'bytes read as text through read()')
  assert.deepEqual(obj.readBuffer(), Buffer.from('bytes'))
  obj.write(new Uint8Array([0x68, 0x69]))
  assert.equal(obj.read(), 'hi')
  for (const value of [42, -0, NaN, Infinity, 1.5e300, true, false, null, nested, [1, 'two', [3]], {}, []]) {
    obj.write(value)
    assert.deepEqual(obj.read(), value)
    const other = SharedObject.open(obj.path) // a reader with no cache
    assert.deepEqual(other.read(), value)
    other.close()
  }
  // Objects come out of the stored JSON afresh on every read: changing one changes nothing.
  obj.write({ list: [1] })
  const first = obj.read()
  first.list.push(2)
  assert.deepEqual(obj.read(), { list: [1] })
  assert.equal(String(obj.readBuffer()), '{"list":[1]}', 'readBuffer() gives the stored JSON')
})

test('a value the codec cannot encode is refused with a coded error and the old value stays', (t) => {
  const dir = tempDir(t)
  const cyclic = { a: 1 }
  cyclic.self = cyclic
  const cases = [
    ['default', [new Map([[1, 2]]), new Date(), 10n, Symbol('s'), () => {}, undefined], 'ERR_INVALID_ARG_TYPE'],
    ['default', [cyclic, { big: 1n }], 'ERR_CODEC_ENCODE'],
    ['json', [cyclic, 10n, undefined, () => {}], 'ERR_CODEC_ENCODE'],
    ['v8', [() => {}, { f() {} }, Symbol('s')], 'ERR_CODEC_ENCODE'],
    [{ encode: () => { throw new Error('nope') }, decode: () => null }, [1], 'ERR_CODEC_ENCODE'],
    [{ encode: () => 42, decode: () => null }, ['anything'], 'ERR_CODEC_ENCODE'],
  ]
  for (const [i, [codec, values, code]] of cases.entries()) {
    const file = path.join(dir, `seg${i}`)
    SharedObject.open(file).write('kept')
    const obj = SharedObject.open(file, { codec })
    t.after(() => obj.close())
    const version = obj.version
    for (const value of values) {
      assert.throws(() => obj.write(value), { code }, `${JSON.stringify(codec)}: ${String(typeof value)}`)
    }
    assert.equal(SharedObject.open(obj.path).read(), 'kept')
    assert.equal(obj.version, version, 'nothing was committed')
  }
})

test('json, v8 and custom codecs round-trip what they can hold; v8 keeps Maps, Dates, BigInts and typed arrays', (t) => {
  const dir = tempDir(t)
  const json = SharedObject.open(path.join(dir, 'json'), { codec: 'json' })
  const v8 = SharedObject.open(path.join(dir, 'v8'), { codec: 'v8' })
  const custom = SharedObject.open(path.join(dir, 'custom'), { codec: reversed })
  t.after(() => [json, v8, custom].forEach((h) => h.close()))
  for (const value of ['a string', 12, null, true, nested, [[1, [2, [3]]], { deep: { er: [4] } }]]) {
    for (const h of [json, v8, custom]) {
      h.write(value)
      assert.deepEqual(h.read(), value)
    }
  }
  const rich = { when: new Date(86400000), map: new Map([['k', new Set([1, 2])]]), big: 2n ** 70n, floats: new Float64Array([1.5, -2]), re: /x+/g }
  v8.write(rich)
  const back = v8.read()
  assert.deepEqual(back, rich)
  assert.ok(back.when instanceof Date && back.map instanceof Map)
  // Every value carries its type tag: a handle with another built-in codec reads it.
  const plain = SharedObject.open(path.join(dir, 'v8'))
  assert.deepEqual(plain.read(), rich)
  plain.close()
  assert.equal(String(SharedObject.open(path.join(dir, 'json')).readBuffer()), JSON.stringify([[1, [2, [3]]], { deep: { er: [4] } }]))
  // A custom codec's value needs that codec to be read.
  custom.write({ secret: 1 })
  const without = SharedObject.open(path.join(dir, 'custom'))
  assert.throws(() => without.read(), { code: 'ERR_CODEC_DECODE' })
  without.close()
  assert.deepEqual(SharedObject.open(path.join(dir, 'custom'), { codec: reversed }).read(), { secret: 1 })
})

test('an object written by one process is read by another, and watch() delivers objects', async (t) => {
  const { file, obj } = segment(t)
  const r = await runFixture(t, 'codec-write.js', [file, 'v8', JSON.stringify({ n: 1 })])
  assert.equal(r.code, 0, r.stderr)
  const value = obj.read()
  assert.ok(value.at instanceof Date, 'a Date through v8')
  assert.deepEqual(value.data, { n: 1 })
  const seen = []
  const stop = obj.watch((v) => seen.push(v))
  t.after(stop)
  const w = await runFixture(t, 'codec-write.js', [file, 'default', JSON.stringify({ list: [1, 2, 3] })])
  assert.equal(w.code, 0, w.stderr)
  await new Promise((resolve) => {
    const poll = () => (seen.length > 0 ? resolve() : setTimeout(poll, 5))
    poll()
  })
  assert.deepEqual(seen.at(-1), { list: [1, 2, 3] })
})

test('invalid codec options are refused', (t) => {
  const dir = tempDir(t)
  for (const codec of ['msgpack', 42, null, { encode() {} }, { encode() {}, decode() {}, name: 7 }]) {
    assert.throws(() => SharedObject.open(path.join(dir, 's'), { codec }), (err) => ['ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_TYPE'].includes(err.code))
    assert.throws(() => Channel.open(path.join(dir, 'c'), { codec }), (err) => ['ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_TYPE'].includes(err.code))
  }
})

test('a channel with a codec carries objects through every receive form; consume() lends the encoded bytes', async (t) => {
  const dir = tempDir(t)
  for (const codec of ['json', 'v8', reversed]) {
    const file = path.join(dir, typeof codec === 'string' ? codec : 'custom')
    const tx = Channel.open(file, { codec })
    const rx = Channel.open(file, { codec })
    t.after(() => [tx, rx].forEach((c) => c.close()))
    assert.equal(tx.send(nested), true)
    assert.deepEqual(rx.receive(), nested)
    assert.equal(tx.sendBatch([1, 'two', [3, [4]], { five: 5 }]), 4)
    assert.deepEqual(rx.receiveBatch(), [1, 'two', [3, [4]], { five: 5 }])
    await tx.sendAsync({ async: true })
    assert.deepEqual(await rx.recv({ timeout: 5000 }), { async: true })
    tx.send([1])
    assert.deepEqual(rx.receiveSync(5000), [1])
    setTimeout(() => tx.send({ later: 1 }), 10)
    for await (const msg of rx.messages({ timeout: 5000 })) {
      assert.deepEqual(msg, { later: 1 })
      break
    }
    // consume() hands out views of the ring: the encoded bytes, decoded by the caller.
    tx.send({ raw: 'view' })
    let raw
    assert.equal(rx.consume((view) => (raw = Buffer.from(view))), 1)
    const decoded = codec === 'json' ? JSON.parse(raw) : codec === 'v8' ? require('node:v8').deserialize(raw) : reversed.decode(raw)
    assert.deepEqual(decoded, { raw: 'view' })
    assert.throws(() => rx.receive({ encoding: 'utf8' }), { code: 'ERR_INVALID_ARG_VALUE' })
  }
})

test('a channel refuses messages its codec cannot encode, sends none of a batch holding one, and reports undecodable messages with their bytes', (t) => {
  const { file, ch } = channel(t)
  const json = Channel.open(file, { codec: 'json' })
  t.after(() => json.close())
  const cyclic = {}
  cyclic.self = cyclic
  assert.throws(() => json.send(cyclic), { code: 'ERR_CODEC_ENCODE' })
  assert.throws(() => json.sendBatch([1, 2, 10n, 3]), (err) => err.code === 'ERR_CODEC_ENCODE' && err.sent === 0 && /msgs\[2\]/.test(err.message))
  return json.sendAsync(undefined).then(
    () => assert.fail('undefined has no JSON form'),
    (err) => {
      assert.equal(err.code, 'ERR_CODEC_ENCODE')
      assert.equal(ch.receive(), null, 'nothing was sent')
      // Raw bytes sent by a handle without the codec: the receiver says which and keeps them.
      ch.sendBatch(['{"ok":1}', 'not json', '[2]'])
      const rx = Channel.open(file, { codec: 'json' })
      t.after(() => rx.close())
      ch.releaseConsumer()
      assert.throws(() => rx.receiveBatch(), (e) => {
        assert.equal(e.code, 'ERR_CODEC_DECODE')
        assert.equal(e.index, 1)
        assert.deepEqual(e.raw.map(String), ['{"ok":1}', 'not json', '[2]'])
        return true
      })
    },
  )
})

test('codec options that cannot be read, or name nothing, get coded errors naming the path (SharedObject, Channel, SharedMap)', (t) => {
  const { SharedMap } = require('..')
  const dir = tempDir(t)
  const revoked = Proxy.revocable({}, {})
  revoked.revoke()
  const hostile = [
    'msgpack',
    revoked.proxy,
    { get encode() { throw new Error('boom') }, decode() {} },
    { encode() {}, decode() {}, get name() { throw new Error('no name') } },
  ]
  for (const codec of hostile) {
    for (const [open, file] of [[SharedObject.open, 's'], [Channel.open, 'c'], [SharedMap.open, 'm']]) {
      const at = path.join(dir, file)
      assert.throws(() => open(at, { codec }), (err) => {
        assert.match(err.code, /^ERR_INVALID_ARG_(VALUE|TYPE)$/, err.stack)
        assert.ok(err.message.startsWith(`${at}: `), err.message)
        return true
      })
    }
  }
})

test('what read() returns through the v8 or a custom codec shares no bytes with the next read()', (t) => {
  const { obj } = segment(t, { codec: 'v8' })
  obj.write({ data: new Uint8Array([1, 2, 3]) })
  obj.read().data[0] = 99
  assert.deepEqual([...obj.read().data], [1, 2, 3])
  const { obj: same } = segment(t, { codec: { encode: (b) => b, decode: (b) => b } }, 'identity')
  same.write(Buffer.from('hello'))
  same.read().write('HACK!')
  assert.equal(same.read().toString(), 'hello')
})

test('a custom encode() result that is not bytes (a Proxy around a Buffer) is ERR_CODEC_ENCODE naming the path; a detached view is refused by SharedMap too', (t) => {
  const { SharedMap } = require('..')
  const { file, obj } = segment(t, { codec: { encode: () => new Proxy(Buffer.from('zz'), {}), decode: (b) => b } })
  assert.throws(() => obj.write(1), (err) => {
    assert.equal(err.code, 'ERR_CODEC_ENCODE')
    assert.ok(err.message.startsWith(`${file}: `), err.message)
    return true
  })
  const map = SharedMap.open(path.join(tempDir(t), 'map'))
  t.after(() => map.close())
  map.set('a', Buffer.from('keep'))
  const detached = Buffer.from(new ArrayBuffer(8))
  structuredClone(detached.buffer, { transfer: [detached.buffer] })
  assert.throws(() => map.set('a', detached), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.deepEqual(map.get('a'), Buffer.from('keep'))
})

test('a channel with the json codec refuses a message that is not UTF-8 (ERR_CODEC_DECODE), its bytes in err.raw exactly', (t) => {
  const { file, ch: raw } = channel(t)
  const json = Channel.open(file, { codec: 'json' })
  t.after(() => json.close())
  const bad = Buffer.from([0x22, 0x63, 0x61, 0x66, 0xe9, 0x22]) // "caf\xe9" in latin1
  raw.send(bad)
  assert.throws(() => json.receive(), (err) => {
    assert.equal(err.code, 'ERR_CODEC_DECODE')
    assert.deepEqual(err.raw, [bad])
    return true
  })
  json.send({ ok: 'é' })
  assert.deepEqual(json.receive(), { ok: 'é' })
})
