'use strict'

// The native loader (lib/native.js): where it finds the binary, and what it says when none fits.
// Each case copies the JavaScript package into a temp folder (no binary unless the case puts one
// there) and requires it from a fresh process.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { tempDir } = require('./helpers.js')

const ROOT = path.join(__dirname, '..')
const pkg = require('../package.json')
const PUBLISHED = ['linux-x64-gnu', 'linux-arm64-gnu', 'darwin-arm64', 'darwin-x64']

/** This machine's platform as napi-rs names it, worked out here independently of the loader. */
function thisPlatform() {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`
  return `linux-${process.arch}-${process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'}`
}

/** The binary this checkout built (npm install / npm run build). */
function builtBinary() {
  return path.join(ROOT, `${pkg.name}.${thisPlatform()}.node`)
}

/** A copy of the package's JavaScript in `<temp>/share-object`, without any binary. */
function packageCopy(t, { checkout = false } = {}) {
  const dir = path.join(tempDir(t), pkg.name)
  fs.mkdirSync(dir)
  for (const f of ['package.json', 'index.js', 'index.mjs', 'lib']) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true })
  if (checkout) fs.writeFileSync(path.join(dir, 'Cargo.toml'), '')
  return dir
}

/** Requires the package at `dir` in a new process; returns { ok } or the error's { code, message }. */
function load(dir, preload) {
  const script = `
    try {
      const { SharedObject } = require(${JSON.stringify(dir)})
      console.log(JSON.stringify({ ok: typeof SharedObject.open === 'function' }))
    } catch (err) {
      console.log(JSON.stringify({ code: err.code, message: err.message, cause: err.cause?.message }))
    }`
  const args = preload ? ['-e', `${preload}\n${script}`] : ['-e', script]
  return JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000 }))
}

function assertBuildHint(message) {
  assert.match(message, /cargo/)
  assert.match(message, /npm run build/)
  assert.doesNotMatch(message, /npm has a bug|4828|removing both package-lock/i, "never napi-rs's generic npm-bug advice")
}

test('with no binary for its platform, require() names the platform, the published platforms and how to build from source', (t) => {
  const platform = thisPlatform()
  const err = load(packageCopy(t))
  assert.equal(err.code, 'ERR_NATIVE_BINDING_NOT_FOUND')
  assert.match(err.message, new RegExp(`no native binary for this platform \\(${platform}\\)`))
  assert.ok(err.message.includes(`published for: ${PUBLISHED.join(', ')}`), err.message)
  assertBuildHint(err.message)
  assert.match(err.message, /in a clone of share-object's source repository/)
  if (PUBLISHED.includes(platform)) {
    // A published platform whose package is missing: optional dependencies were left out.
    assert.ok(err.message.includes(`npm install ${pkg.name}-${platform}@${pkg.version}`), err.message)
  }
})

test('on a platform nothing is published for, the message says so and points to a build from source', (t) => {
  const err = load(packageCopy(t), "Object.defineProperty(process, 'arch', { value: 'riscv64' })")
  assert.equal(err.code, 'ERR_NATIVE_BINDING_NOT_FOUND')
  const platform = thisPlatform().replace(process.arch, 'riscv64')
  assert.match(err.message, new RegExp(`\\(${platform}\\)`))
  assert.ok(err.message.includes(`published for: ${PUBLISHED.join(', ')}`), err.message)
  assert.doesNotMatch(err.message, /Your platform is among them/)
  assertBuildHint(err.message)

  const bsd = load(packageCopy(t), "Object.defineProperty(process, 'platform', { value: 'freebsd' })")
  assert.equal(bsd.code, 'ERR_NATIVE_BINDING_NOT_FOUND')
  assert.match(bsd.message, new RegExp(`\\(freebsd-${process.arch}\\)`))
})

test('in a source checkout that has not been built, the message says to run npm run build there', (t) => {
  const err = load(packageCopy(t, { checkout: true }))
  assert.equal(err.code, 'ERR_NATIVE_BINDING_NOT_FOUND')
  assert.match(err.message, /`npm install` and `npm run build` in this checkout/)
})

test('a binary that is there but cannot be loaded is reported with the loader error, not as missing', (t) => {
  const dir = packageCopy(t)
  const file = path.join(dir, `${pkg.name}.${thisPlatform()}.node`)
  fs.writeFileSync(file, 'not a shared library')
  const err = load(dir)
  assert.equal(err.code, 'ERR_NATIVE_BINDING_LOAD_FAILED')
  assert.ok(err.message.includes(file), err.message)
  assert.ok(err.cause && err.message.includes(err.cause), 'the system loader error is in the message and kept as cause')
  assertBuildHint(err.message)
})

test('the binary is found in its platform package, and a package of another version is refused', (t) => {
  const dir = packageCopy(t)
  const name = `${pkg.name}-${thisPlatform()}`
  const platformPkg = path.join(path.dirname(dir), 'node_modules', name)
  fs.mkdirSync(platformPkg, { recursive: true })
  const main = `${pkg.name}.${thisPlatform()}.node`
  fs.copyFileSync(builtBinary(), path.join(platformPkg, main))
  const manifest = { name, version: pkg.version, main }
  fs.writeFileSync(path.join(platformPkg, 'package.json'), JSON.stringify(manifest))
  assert.deepEqual(load(dir), { ok: true })

  fs.writeFileSync(path.join(platformPkg, 'package.json'), JSON.stringify({ ...manifest, version: '0.0.1-other' }))
  const err = load(dir)
  assert.equal(err.code, 'ERR_NATIVE_BINDING_LOAD_FAILED')
  assert.ok(err.message.includes(`needs ${name}@${pkg.version}, but 0.0.1-other is installed`), err.message)
})

test('a binary built from source beside package.json is preferred to the platform package', (t) => {
  const dir = packageCopy(t)
  const main = `${pkg.name}.${thisPlatform()}.node`
  fs.copyFileSync(builtBinary(), path.join(dir, main))
  // A broken platform package would fail the load if it were used.
  const platformPkg = path.join(path.dirname(dir), 'node_modules', `${pkg.name}-${thisPlatform()}`)
  fs.mkdirSync(platformPkg, { recursive: true })
  fs.writeFileSync(path.join(platformPkg, 'package.json'), JSON.stringify({ name: 'x', version: '0.0.0', main }))
  assert.deepEqual(load(dir), { ok: true })
})
