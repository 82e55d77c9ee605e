// Type-checked by `tsc --noEmit -p __test__` during `npm test`: share-object/keyv and
// share-object/rate-limit as a TypeScript user writes them, handed to Keyv, cacheable and
// express-rate-limit, whose own types must accept them. Never run.
import { Keyv, type KeyvStoreAdapter } from 'keyv'
import { Cacheable } from 'cacheable'
import express from 'express'
import { rateLimit, type Store } from 'express-rate-limit'
import { SharedMap } from 'share-object'
import { KeyvShareObject, type KeyvShareObjectOptions } from 'share-object/keyv'
import { ShareObjectStore, type ShareObjectStoreOptions, type ShareObjectStoreInfo } from 'share-object/rate-limit'

const keyvOptions: KeyvShareObjectOptions = { path: 'cache.map', max: 10_000, ttl: 60_000, codec: 'default' }
const store = new KeyvShareObject(keyvOptions)
const asAdapter: KeyvStoreAdapter = store
const keyv = new Keyv<{ name: string }>({ store, namespace: 'users' })
const alsoKeyv = new Keyv(new KeyvShareObject('cache.map'))
const cache = new Cacheable({ primary: new Keyv({ store: new KeyvShareObject({ map: SharedMap.open('cache.map') }) }), ttl: '1m' })
async function useKeyv(): Promise<void> {
  const stored: boolean = await keyv.set('1', { name: 'Ada' }, 1000)
  const user: { name: string } | undefined = await keyv.get('1')
  const raw: unknown = await store.get('users:1')
  const many: boolean[] = await store.setMany([{ key: 'a', value: 'x', ttl: 5 }])
  const deleted: boolean = await store.deleteMany(['a'])
  const flags: boolean[] = await store.hasMany(['a'])
  for await (const [key, value] of store.iterator('users')) void [key.length, value]
  const map: SharedMap = store.map
  const dialect: string = store.opts.dialect
  const ns: string | undefined = store.namespace
  await cache.getOrSet('k', async () => 1)
  await store.disconnect()
  void [stored, user, raw, many, deleted, flags, map, dialect, ns, asAdapter, alsoKeyv]
}

const limitOptions: ShareObjectStoreOptions = { path: 'limits.map', prefix: 'api:', maxSize: 1 << 20 }
const limits = new ShareObjectStore(limitOptions)
const asStore: Store = limits
const app = express()
app.use(rateLimit({ windowMs: 60_000, limit: 100, store: limits }))
app.use('/login', rateLimit({ windowMs: 60_000, limit: 5, store: new ShareObjectStore('limits.map') }))
async function useLimits(): Promise<void> {
  limits.init({ windowMs: 1000 })
  const info: ShareObjectStoreInfo = await limits.increment('1.2.3.4')
  const hits: number = info.totalHits
  const reset: Date = info.resetTime
  const maybe: ShareObjectStoreInfo | undefined = await limits.get('1.2.3.4')
  await limits.decrement('1.2.3.4')
  await limits.resetKey('1.2.3.4')
  await limits.resetAll()
  await limits.shutdown()
  const local: false = limits.localKeys
  const prefix: string = limits.prefix
  const windowMs: number | undefined = limits.windowMs
  void [hits, reset, maybe, local, prefix, windowMs, asStore]
}

void [useKeyv, useLimits]
