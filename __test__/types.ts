// Type-checked by `tsc --noEmit -p __test__` during `npm test`: the public API as a
// TypeScript user writes it. Never run.
import { read, write, SharedObject, Channel, type OpenOptions, type Change } from 'share-object'

const bytes: number = write('Hello World!')
const text: string = read()

const options: OpenOptions = { size: 4096, maxSize: 1 << 20, create: true, readOnly: false, mode: 0o600 }
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
const blocking: Buffer | null = ch.receiveSync(10)
const later: Promise<Buffer> = ch.recv({ timeout: 10 })
async function consume(): Promise<void> {
  await ch.claimConsumer({ wait: true, timeout: 100 })
  for await (const msg of ch) void msg.byteLength
}
const info: [string, number, number, number, boolean, boolean] = [ch.path, ch.capacity, ch.maxMessage, ch.queued, ch.isConsumer, ch.hasConsumer]
ch.releaseConsumer()
ch.close()

// @ts-expect-error the top-level write takes strings only
write(42)
// @ts-expect-error instances come from the static factories
new SharedObject()

void [bytes, text, n, value, copy, facts, next, now, stop, iterate, locked, syncLocked, child, ok, count, sent, one, str, many, strings, blocking, later, consume, info]

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
