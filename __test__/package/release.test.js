'use strict'

// What gets published, checked as a user meets it: the release binary built for glibc 2.17
// (scripts/build-release.js, through zig), the tarballs scripts/pack.js makes, and an install of
// them by name from a registry on 127.0.0.1 that serves them in the napi-rs layout, with
// --ignore-scripts and no cargo on PATH, then the demo and two processes sharing a value.
// Linux only: the glibc build and check are Linux matters (the workflow packs the other
// platforms on their own runners).

const { test, before } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { tempDir, spawnProcess, exitOf, waitFor } = require('../helpers.js')
const { highestGlibc, parseGlibc, compare } = require('../../scripts/glibc-version.js')
const pkg = require('../../package.json')

const ROOT = path.join(__dirname, '..', '..')
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const PLATFORM = `linux-${process.arch}-gnu`
const PUBLISHED = ['linux-x64-gnu', 'linux-arm64-gnu', 'darwin-arm64', 'darwin-x64']
const linuxGnu = process.platform === 'linux' && Boolean(process.report.getReport().header.glibcVersionRuntime)

let work // a temp folder for the whole file, removed at the end
let tarballs // { main, platform } paths
let stage // pack.js's staging folder (the per-platform package.json files)

before(() => {
  if (!linuxGnu) return
  work = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'share-object-release-'))
  process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }))
  const artifacts = path.join(work, 'artifacts')
  const out = path.join(work, 'dist')
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-release.js'), '--out-dir', artifacts], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
  const packed = execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'pack.js'), '--artifacts', artifacts, '--out', out], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  const files = JSON.parse(packed.trim().split('\n').pop())
  tarballs = {
    main: files.find((f) => path.basename(f) === `${pkg.name}-${pkg.version}.tgz`),
    platform: files.find((f) => path.basename(f) === `${pkg.name}-${PLATFORM}-${pkg.version}.tgz`),
  }
  assert.ok(tarballs.main && tarballs.platform, `pack.js made ${files.join(', ')}`)
  stage = path.join(out, 'stage')
})

/** The entries of a .tgz, and a reader for one of them. */
function tarball(file) {
  const entries = execFileSync('tar', ['tzf', file], { encoding: 'utf8' }).trim().split('\n')
  const read = (entry) => execFileSync('tar', ['xzOf', file, entry], { maxBuffer: 256 * 1024 * 1024 })
  return { entries, read, manifest: JSON.parse(read('package/package.json')) }
}

function readelfHighest(file) {
  const out = execFileSync('readelf', ['-V', '-W', file], { encoding: 'utf8' })
  const names = [...out.matchAll(/Name: (GLIBC_[0-9.]+)/g)].map((m) => m[1])
  return names.sort((a, b) => compare(parseGlibc(a), parseGlibc(b))).pop()
}

test('the Linux glibc binary loads on glibc 2.17: its highest required GLIBC symbol version is at most 2.17', { skip: !linuxGnu && 'Linux glibc only' }, (t) => {
  const dir = tempDir(t)
  const { entries, read, manifest } = tarball(tarballs.platform)
  const binary = path.join(dir, manifest.main)
  assert.ok(entries.includes(`package/${manifest.main}`))
  fs.writeFileSync(binary, read(`package/${manifest.main}`))
  const needs = highestGlibc(binary)
  t.diagnostic(`${manifest.name}: needs ${needs}`)
  assert.match(needs, /^GLIBC_/)
  assert.ok(compare(parseGlibc(needs), parseGlibc('GLIBC_2.17')) <= 0, `${manifest.main} needs ${needs}`)
  // The reader agrees with binutils' readelf, on this binary and on the one cargo built for this
  // machine's own glibc (which needs more: the reason for building through zig).
  assert.equal(needs, readelfHighest(binary))
  const hostBuild = path.join(ROOT, `${pkg.name}.${PLATFORM}.node`)
  t.diagnostic(`the same crate built against this machine's glibc needs ${highestGlibc(hostBuild)}`)
  assert.equal(highestGlibc(hostBuild), readelfHighest(hostBuild))
})

test('no tarball carries an install-time script, Rust sources or test files', { skip: !linuxGnu && 'Linux glibc only' }, () => {
  const main = tarball(tarballs.main)
  const forbidden = /(^|\/)(__test__|fixtures|src|benchmark|scripts|target|npm|\.ci|\.github)\/|\.rs$|Cargo\.(toml|lock)$|build\.rs$|\.test\.[cm]?js$|\.node$|binding\./
  assert.deepEqual(main.entries.filter((e) => forbidden.test(e.replace(/^package\//, ''))), [])
  for (const needed of ['index.js', 'index.mjs', 'index.d.ts', 'lib/native.js', 'lib/platform.js', 'bin/share-object.js', 'examples/demo.js', 'README.md', 'package.json']) {
    assert.ok(main.entries.includes(`package/${needed}`), `the main package ships ${needed}`)
  }
  assert.equal(main.manifest.scripts, undefined, 'no scripts: no prepare, no install hooks')
  assert.equal(main.manifest.devDependencies, undefined)
  assert.deepEqual(main.manifest.optionalDependencies, Object.fromEntries(PUBLISHED.map((p) => [`${pkg.name}-${p}`, pkg.version])))

  const platform = tarball(tarballs.platform)
  assert.deepEqual(platform.entries.sort(), ['package/README.md', 'package/package.json', `package/${pkg.name}.${PLATFORM}.node`])
  assert.equal(platform.manifest.scripts, undefined)
  assert.deepEqual([platform.manifest.os, platform.manifest.cpu, platform.manifest.libc], [['linux'], [process.arch], ['glibc']])
})

/**
 * A registry on 127.0.0.1 serving what was packed, as the npm registry would after publishing:
 * every platform package's metadata (with its os/cpu/libc), and tarballs for those packed here.
 * npm has to pick the platform package by those fields; fetching any other tarball is a 404.
 */
async function localRegistry(t) {
  const manifests = [JSON.parse(fs.readFileSync(path.join(stage, pkg.name, 'package.json'), 'utf8'))]
  for (const p of PUBLISHED) manifests.push(JSON.parse(fs.readFileSync(path.join(stage, 'npm', p, 'package.json'), 'utf8')))
  const files = new Map() // url path -> tarball
  const requests = []
  const server = http.createServer((req, res) => {
    requests.push(req.url)
    const name = decodeURIComponent(req.url.slice(1))
    const m = manifests.find((x) => x.name === name)
    if (m) {
      const versions = { [m.version]: { ...m, _id: `${m.name}@${m.version}`, dist: dists.get(m.name) } }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ name: m.name, 'dist-tags': { latest: m.version }, versions }))
    } else if (files.has(req.url)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      res.end(fs.readFileSync(files.get(req.url)))
    } else {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"error":"not found"}')
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const base = `http://127.0.0.1:${server.address().port}`
  const dists = new Map()
  for (const m of manifests) {
    const urlPath = `/${m.name}/-/${m.name}-${m.version}.tgz`
    const file = [tarballs.main, tarballs.platform].find((f) => path.basename(f) === `${m.name}-${m.version}.tgz`)
    const bytes = file ? fs.readFileSync(file) : Buffer.from('never packed here')
    if (file) files.set(urlPath, file)
    dists.set(m.name, {
      tarball: `${base}${urlPath}`,
      integrity: `sha512-${crypto.createHash('sha512').update(bytes).digest('base64')}`,
      shasum: crypto.createHash('sha1').update(bytes).digest('hex'),
    })
  }
  return { url: base, requests }
}

/**
 * An environment in which PATH holds only `node` and `npm` (links in `dir`/bin): no cargo, no
 * compiler. npm's own npm_config_* variables (set under `npm run`) are left out too.
 */
function bareEnv(dir) {
  const bin = path.join(dir, 'bin')
  fs.mkdirSync(bin)
  const npmOnPath = (process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, NPM)).find((f) => fs.existsSync(f))
  assert.ok(npmOnPath, 'npm is on PATH')
  fs.symlinkSync(fs.realpathSync(npmOnPath), path.join(bin, NPM))
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
  env.PATH = bin
  return env
}

test('installed by name with --ignore-scripts and no cargo on PATH, the demo and two processes sharing a value run', { skip: !linuxGnu && 'Linux glibc only' }, async (t) => {
  const { url: registry, requests } = await localRegistry(t)
  const dir = tempDir(t)
  const app = path.join(dir, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), '{ "name": "app", "private": true }\n')
  fs.writeFileSync(path.join(dir, 'npmrc'), '')
  const env = bareEnv(dir)
  assert.equal(spawnSync('cargo', ['--version'], { env }).error?.code, 'ENOENT', 'cargo is not on PATH')

  const npm = spawnProcess(t, path.join(dir, 'bin', NPM), ['install', `${pkg.name}@${pkg.version}`, '--ignore-scripts', '--no-audit', '--no-fund', `--registry=${registry}/`, `--cache=${path.join(dir, 'npm-cache')}`, `--userconfig=${path.join(dir, 'npmrc')}`], { cwd: app, env })
  const installed = await exitOf(npm, 120_000, 'npm install')
  assert.equal(installed.code, 0, `npm install failed: ${npm.stderrText}`)
  assert.deepEqual(`${npm.stdoutText}\n${npm.stderrText}`.split('\n').filter((l) => /\bwarn\b/i.test(l)), [], 'npm install warned')
  const modules = fs.readdirSync(path.join(app, 'node_modules')).filter((n) => !n.startsWith('.')).sort()
  assert.deepEqual(modules, [pkg.name, `${pkg.name}-${PLATFORM}`], 'the main package and only the platform package that fits')
  const downloads = requests.filter((u) => u.endsWith('.tgz')).sort()
  assert.deepEqual(downloads, [`/${pkg.name}-${PLATFORM}/-/${pkg.name}-${PLATFORM}-${pkg.version}.tgz`, `/${pkg.name}/-/${pkg.name}-${pkg.version}.tgz`].sort(), 'npm chose by os/cpu/libc without fetching the others')
  for (const p of PUBLISHED) assert.ok(requests.includes(`/${pkg.name}-${p}`), `npm read ${pkg.name}-${p}'s metadata`)

  // The demo, from the installed package.
  const demo = spawnProcess(t, process.execPath, [path.join(app, 'node_modules', pkg.name, 'examples', 'demo.js')], { cwd: app, env })
  const demoExit = await exitOf(demo, 30_000, 'the demo')
  assert.equal(demoExit.code, 0, `demo failed: ${demo.stderrText}`)
  assert.match(demo.stdoutText, /reader: "Hello World!"/)

  // Two processes: a reader waiting for a change, and a writer.
  const seg = path.join(dir, 'seg')
  const reader = spawnProcess(
    t,
    process.execPath,
    ['-e', `const { SharedObject } = require('share-object'); const s = SharedObject.open(process.argv[1]); const v = s.version; console.log('ready'); s.waitForChange(v, { timeout: 20000 }).then(() => { console.log('read ' + s.read()); s.close() })`, seg],
    { cwd: app, env },
  )
  await waitFor(() => reader.lines.includes('ready') || reader.exitCode !== null, 20_000, 'the reader')
  const writer = spawnProcess(t, process.execPath, ['-e', `require('share-object').SharedObject.open(process.argv[1]).write('from the writer')`, seg], { cwd: app, env })
  assert.equal((await exitOf(writer, 20_000, 'the writer')).code, 0, writer.stderrText)
  assert.equal((await exitOf(reader, 30_000, 'the reader')).code, 0, reader.stderrText)
  assert.deepEqual(reader.lines, ['ready', 'read from the writer'])

  // The command line, installed as a bin.
  const cli = (...args) => execFileSync(path.join(app, 'node_modules', '.bin', 'share-object'), args, { cwd: app, env, encoding: 'utf8', timeout: 20_000 })
  cli('write', seg, 'from the CLI')
  assert.equal(cli('read', seg), 'from the CLI\n')
})
