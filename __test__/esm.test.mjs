// The package as an ES module: named and default imports resolve to the same API as require().
import test from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import shareObject, { read, write, SharedObject, Channel } from 'share-object'

const require = createRequire(import.meta.url)

test('import { read, write, SharedObject, Channel } from "share-object" works', (t) => {
  const cjs = require('share-object')
  assert.equal(SharedObject, cjs.SharedObject)
  assert.equal(Channel, cjs.Channel)
  assert.equal(read, cjs.read)
  assert.equal(write, cjs.write)
  assert.equal(shareObject.SharedObject, SharedObject)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'share-object-esm-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const obj = SharedObject.open(path.join(dir, 'seg'))
  obj.write('from esm')
  assert.equal(obj.read(), 'from esm')
  obj.close()
})
