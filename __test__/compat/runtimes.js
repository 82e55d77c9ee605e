'use strict'

// The JavaScript runtimes share-object is tested under, each fetched as an npm registry package
// into the cache (scripts/cache.js) and run from there. Exact versions, so that a run never
// changes because a registry moved on; to move to a newer release, bump its version here.
// SHARE_OBJECT_RUNTIMES=node22,bun (names from this table) runs a subset; the name `node` is
// the Node.js running the tests (where no node-<os>-<arch> package exists, e.g. macOS arm64).

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { ensureNpmPackage, cacheDir } = require('../../scripts/cache.js')

// The Node.js lines supported (package.json `engines`): the latest release of each.
const NODE = { 20: '20.20.2', 22: '22.23.5', 24: '24.22.3', 26: '26.12.1' }
const BUN = '1.4.5'
const DENO = '2.9.6'

const OS = { linux: 'linux', darwin: 'darwin' }[process.platform]
const ARCH = { x64: 'x64', arm64: 'arm64' }[process.arch]

/** The one executable in `dir`'s node_modules/<scope>/*\/<relative>, e.g. @oven/bun-linux-x64/bin/bun. */
function findIn(dir, scope, relative) {
  const root = path.join(dir, 'node_modules', scope)
  const hits = fs
    .readdirSync(root)
    .map((name) => path.join(root, name, relative))
    .filter((p) => fs.existsSync(p))
  if (hits.length !== 1) throw new Error(`expected one ${relative} under ${root}, found ${hits.length}`)
  return hits[0]
}

const RUNTIMES = [
  ...Object.entries(NODE).map(([line, version]) => ({
    name: `node${line}`,
    version,
    spec: `node-${OS}-${ARCH}@${version}`,
    bin: (dir) => path.join(dir, 'node_modules', `node-${OS}-${ARCH}`, 'bin', 'node'),
    args: (script, rest) => [script, ...rest],
  })),
  {
    name: 'bun',
    version: BUN,
    spec: `bun@${BUN}`,
    // The platform binary itself: the `bun` package's postinstall (skipped) only links it.
    bin: (dir) => findIn(dir, '@oven', path.join('bin', 'bun')),
    args: (script, rest) => [script, ...rest],
  },
  {
    name: 'deno',
    version: DENO,
    spec: `deno@${DENO}`,
    bin: (dir) => findIn(dir, '@deno', 'deno'),
    // Loading a native addon needs --allow-ffi; the peers also read and write files and env.
    args: (script, rest) => ['run', '--allow-all', script, ...rest],
  },
]

/** Environment for runtime children: no update checks, prompts, telemetry or colours. */
function runtimeEnv() {
  return {
    ...process.env,
    DENO_NO_UPDATE_CHECK: '1',
    DENO_NO_PROMPT: '1',
    DENO_DIR: path.join(cacheDir(), 'deno-dir'),
    DO_NOT_TRACK: '1',
    NO_COLOR: '1',
  }
}

/** The Node.js running the tests: selectable by name, never fetched. */
const HOST_NODE = {
  name: 'node',
  version: process.versions.node,
  host: true,
  args: (script, rest) => [script, ...rest],
}

/** The runtimes selected for this run (all of RUNTIMES, or $SHARE_OBJECT_RUNTIMES). */
function selected() {
  const wanted = (process.env.SHARE_OBJECT_RUNTIMES ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  if (wanted.length === 0) return RUNTIMES
  const known = [...RUNTIMES, HOST_NODE]
  const unknown = wanted.filter((n) => !known.some((r) => r.name === n))
  if (unknown.length) throw new Error(`SHARE_OBJECT_RUNTIMES: unknown ${unknown.join(', ')} (known: ${known.map((r) => r.name).join(', ')})`)
  return known.filter((r) => wanted.includes(r.name))
}

/**
 * Fetches a runtime into the cache if it is not there yet (checking that it runs and reports
 * its version) and returns { name, version, command, args(script, rest) }.
 */
function ensureRuntime(runtime) {
  if (runtime.host) return { name: runtime.name, version: runtime.version, command: process.execPath, args: runtime.args }
  if (!OS || !ARCH) throw new Error(`no runtime packages for ${process.platform}-${process.arch}`)
  const check = (dir) => {
    const out = execFileSync(runtime.bin(dir), ['--version'], { encoding: 'utf8', env: runtimeEnv(), timeout: 60_000 })
    if (!out.includes(runtime.version)) throw new Error(`${runtime.spec}: --version printed ${JSON.stringify(out)}`)
  }
  const dir = ensureNpmPackage(runtime.spec, check)
  return { name: runtime.name, version: runtime.version, command: runtime.bin(dir), args: runtime.args }
}

module.exports = { RUNTIMES, NODE, selected, ensureRuntime, runtimeEnv }
