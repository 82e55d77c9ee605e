// Keyv's compliance suite, unmodified, against share-object/keyv: wired as Keyv's own
// adapters wire it (@keyv/redis's test/suite.test.ts): vitest's `test` module, Keyv, and a
// factory of stores. Each store opens the same map file, as each of @keyv/sqlite's opens
// the same database. Run by vitest (__test__/vitest.config.mjs), not by node --test.
import * as test from 'vitest'
import keyvTestSuite, { keyvIteratorTests } from '@keyv/test-suite'
import { Keyv } from 'keyv'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { KeyvShareObject } from 'share-object/keyv'

// A private folder: the one __test__/keyv.test.js made for this run, or a fresh one.
const given = process.env.KEYV_SUITE_DIR
const dir = given || fs.mkdtempSync(path.join(os.tmpdir(), 'share-object-keyv-suite-'))
const file = path.join(dir, 'keyv-suite.map')

const stores = []
const store = () => {
  const s = new KeyvShareObject({ path: file })
  stores.push(s)
  return s
}

test.afterAll(async () => {
  for (const s of stores) await s.disconnect()
  if (!given) fs.rmSync(dir, { recursive: true, force: true })
})

keyvTestSuite(test, Keyv, store)
keyvIteratorTests(test, Keyv, store)
