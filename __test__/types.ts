// Type-checked by `tsc --noEmit -p __test__` during `npm test`: the public API as a
// TypeScript user writes it. Never run.
import shareObject, { read, write, SharedObject, Channel, type OpenOptions, type Change, type SendBatchError, type UpgradeResult, type CodecChannel } from 'share-object'

// The default import is the module itself (TS1192 "has no default export" before it was typed).
const viaDefault: [typeof read, typeof SharedObject, typeof Channel, typeof SharedMap] = [shareObject.read, shareObject.SharedObject, shareObject.Channel, shareObject.SharedMap]
const bytes: number = write('Hello World!')
const text: string = read()

const options: OpenOptions = { size: 4096, maxSize: 1 << 20, create: true, readOnly: false, mode: 0o600, codec: 'default' }
const obj = SharedObject.open('/tmp/x', options)
const n: number = obj.write(Buffer.from('x')) + obj.write(new Uint8Array(2)) + obj.write('s')
const value: string = obj.read()
const copy: Buffer = obj.readBuffer()
const facts: [number, number, string, boolean, number, boolean] = [obj.version, obj.capacity, obj.path, obj.readOnly, obj.fd, obj.locked]
const next: Promise<number> = obj.waitForChange(obj.version, { timeout: 10, signal: AbortSignal.timeout(5), ref: false })
const now: number = obj.waitForChangeSync(undefined, 10)
const stop: () => void = obj.watch((v: string, version: number) => void [v, version], { ref: false })
async function iterate(): Promise<void> {
  for await (const change of obj.changes({ signal: AbortSignal.timeout(10) })) {
    const c: Change = change
    void c.value.length
    void c.version.toFixed()
  }
}
const locked: Promise<number> = obj.lock(async () => 42, { timeout: 100 })
const syncLocked: string = obj.lockSync(() => 'x')
const boundedSync: number = obj.lockSync(() => 1, { timeout: 50 })
const ints = new Int32Array(obj.buffer.buffer, obj.buffer.byteOffset, 4)
Atomics.add(ints, 0, 1)
const anon = SharedObject.anonymous(1024)
const child = SharedObject.fromFd(anon.fd, { readOnly: true })
SharedObject.unlink('/tmp/x')
obj.close()
anon[Symbol.dispose]()

const ch = Channel.open('/tmp/c', { capacity: 1 << 20, create: true, mode: 0o600 })
const ok: boolean = ch.send('m') && ch.send(Buffer.alloc(1))
const count: number = ch.sendBatch(['a', Buffer.from('b'), new Uint8Array(1)])
const sent: Promise<void> = ch.sendAsync('x', { timeout: 5, signal: AbortSignal.timeout(5) })
const one: Buffer | null = ch.receive()
const str: string | null = ch.receiveString()
const many: Buffer[] = ch.receiveBatch(16)
const strings = ch.receiveBatch(16, { encoding: 'utf8' })
const consumed: number = ch.consume((view: Buffer) => void view.readUInt32LE(0), 64)
// A callback may refuse a message (false): it stays queued.
const handedOn: number = ch.consume((view: Buffer) => view.length > 0)
const ready: Promise<void> = ch.waitForMessage({ timeout: 10, signal: AbortSignal.timeout(5) })
try {
  ch.sendBatch(['a', 'b'])
} catch (err) {
  const sentBefore: number = (err as SendBatchError).sent
  void sentBefore
}
const blocking: Buffer | null = ch.receiveSync(10)
const later: Promise<Buffer> = ch.recv({ timeout: 10 })

// With an encoding a receive can only give strings; without one, only Buffers. Each line
// below type-checks only with those exact types (they were all `Buffer | string` before).
const oneString: string | null = ch.receive({ encoding: 'utf8' })
const hexStrings: string[] = ch.receiveBatch(8, { encoding: 'hex' })
const syncString: string | null = ch.receiveSync(10, { encoding: 'utf8' })
const laterString: Promise<string> = ch.recv({ encoding: 'utf8', timeout: 10 })
const asBuffer: Buffer | null = ch.receive({ encoding: 'buffer' })
const unknownEncoding = (encoding: BufferEncoding | undefined) => ch.receive({ encoding }) // either, when not known
const either: Buffer | string | null = unknownEncoding('utf8')
async function iterateMessages(): Promise<void> {
  for await (const msg of ch.messages({ timeout: 10 })) {
    const b: Buffer = msg
    void b.byteLength
  }
  for await (const msg of ch.messages({ encoding: 'utf8' })) {
    const t: string = msg
    void t.toUpperCase()
  }
}
// @ts-expect-error a utf8 receive is never a Buffer
const notBuffer: Buffer | null = ch.receive({ encoding: 'utf8' })
// @ts-expect-error a receive without an encoding is never a string
const notString: string | null = ch.receive()
async function notStrings(): Promise<void> {
  for await (const msg of ch.messages()) {
    // @ts-expect-error messages() without an encoding yields Buffers only
    const t: string = msg
    void t
  }
}
async function consume(): Promise<void> {
  await ch.claimConsumer({ wait: true, timeout: 100 })
  for await (const msg of ch) void msg.byteLength
}
const info: [string, number, number, number, boolean, boolean] = [ch.path, ch.capacity, ch.maxMessage, ch.queued, ch.isConsumer, ch.hasConsumer]
ch.releaseConsumer()
ch.close()

// The top-level write takes what the default codec stores.
write(42) + write({ a: [1, null] }) + write(null)
// @ts-expect-error but not a Map
write(new Map())

// Objects as values, typed by the caller.
interface Config { level: string; retries: number[] }
const config = SharedObject.open<Config>('/tmp/config', { codec: 'json' })
config.write({ level: 'debug', retries: [1, 2] })
const level: string = config.read().level
config.watch((c: Config, version: number) => void [c.retries.length, version])
const rich = SharedObject.open<Map<string, Date>>('/tmp/rich', { codec: 'v8' })
rich.write(new Map([['at', new Date()]]))
const when: Date | undefined = rich.read().get('at')
const upgraded: UpgradeResult = SharedObject.upgrade('/tmp/old', { discardTorn: false })
void [upgraded.version, upgraded.converted, upgraded.discardedTorn, level, when]

// A channel with a codec carries values.
const jobs: CodecChannel<{ id: number }> = Channel.open<{ id: number }>('/tmp/jobs', { codec: 'json' })
const sentJob: boolean = jobs.send({ id: 1 }) && jobs.sendBatch([{ id: 2 }]) > 0
const job: { id: number } | null = jobs.receive()
const jobsBatch: { id: number }[] = jobs.receiveBatch(8)
const nextJob: Promise<{ id: number }> = jobs.recv({ timeout: 10 })
const rawViews: number = jobs.consume((view: Buffer) => void view.length)
async function work(): Promise<void> {
  for await (const j of jobs) void j.id.toFixed()
}
// @ts-expect-error a codec channel's messages are values, not encodings
jobs.receive({ encoding: 'utf8' })
// @ts-expect-error values of the channel's type
jobs.send('text')
void [sentJob, job, jobsBatch, nextJob, rawViews, work]
// @ts-expect-error instances come from the static factories
new SharedObject()

void [viaDefault, bytes, text, n, value, copy, facts, next, now, stop, iterate, locked, syncLocked, boundedSync, child, ok, count, sent, one, str, many, strings, blocking, later, consume, info]
void [notStrings, consumed, handedOn, ready, oneString, hexStrings, syncString, laterString, asBuffer, either, iterateMessages, notBuffer, notString]

// SharedMap
import { SharedMap, type SharedMapOptions, type SharedMapInfo, type CustomCodec } from 'share-object'
const mapOptions: SharedMapOptions = { max: 100, maxSize: 1 << 20, ttl: 1000, evict: true, updateAgeOnGet: false, codec: 'v8', create: true, readOnly: false, mode: 0o600 }
const users = SharedMap.open<{ name: string }>('/tmp/m', mapOptions)
const user: { name: string } | undefined = users.get('u1')
const chained: SharedMap<{ name: string }> = users.set('u1', { name: 'a' }, { ttl: 5 }).set('u2', { name: 'b' })
const peeked: { name: string } | undefined = users.peek('u1')
const had: boolean = users.has('u1') && users.delete('u1')
const mapSize: number = users.size
const mapInfo: SharedMapInfo = users.info()
const remaining: number = users.getRemainingTTL('u1')
const computed: Promise<{ name: string }> = users.getOrSet('u3', async (key: string) => ({ name: key }), { ttl: 10, timeout: 5 })
const updated: { name: string } = users.update('u1', (current) => ({ name: `${current?.name ?? ''}!` }))
const counters = SharedMap.anonymous<number>({ max: 10 })
const hits: number = counters.incr('hits', 2, { ttl: 60_000 })
for (const [key, value] of users) void [key.length, value.name]
const allKeys: string[] = [...users.keys()]
users.forEach((value, key, self) => void [value.name, key.length, self.size])
const stopWatching: () => void = users.watch('user:*', (value, key) => void [value?.name, key.length], { ref: false })
const changed: Promise<{ name: string } | undefined> = users.waitForChange('u1', { timeout: 10 })
const codec: CustomCodec = { name: 'x', encode: (v) => Buffer.from(JSON.stringify(v)), decode: (b) => JSON.parse(b.toString()) }
SharedMap.open('/tmp/m2', { codec })
SharedMap.unlink('/tmp/m')
// @ts-expect-error keys are strings
users.get(1)
// @ts-expect-error values must match the map's type
users.set('u1', 42)
// @ts-expect-error instances come from the static factories
new SharedMap()
users[Symbol.dispose]()
void [chained, user, peeked, had, mapSize, mapInfo, remaining, computed, updated, hits, allKeys, stopWatching, changed, SharedMap.fromFd(3).fd]
