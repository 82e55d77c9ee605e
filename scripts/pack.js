#!/usr/bin/env node
'use strict'

// Packs what gets published, in the napi-rs layout:
//   - one package per platform, share-object-<platform> (made by `napi create-npm-dirs`), holding
//     only its binary, with `os`/`cpu`/`libc` so that npm installs the one that fits;
//   - the main package share-object: the JavaScript, types, CLI and examples, with every
//     platform package as an optional dependency at the same version. Its package.json has no
//     scripts (no `prepare`: installing never builds or runs anything) and no devDependencies.
//
//   node scripts/pack.js [--artifacts <dir>] [--out <dir>] [--require-all]
//
// Binaries (share-object.<platform>.node) are taken from --artifacts (searched two folders deep;
// default artifacts/, where scripts/build-release.js writes them). Platforms without a binary
// are skipped, or fail the run with --require-all (for publishing). Tarballs go to --out
// (default dist/); the last line printed is a JSON list of them.

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { parseArgs } = require('node:util')
const { publishedPlatforms } = require('../lib/platform.js')

const ROOT = path.join(__dirname, '..')
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** Binaries named `<binaryName>.<platform>.node` in `dir` and its subfolders (2 levels). */
function findBinaries(dir) {
  const found = new Map()
  const walk = (d, depth) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name)
      if (entry.isDirectory() && depth < 2 && entry.name !== 'node_modules') walk(p, depth + 1)
      const m = entry.isFile() && new RegExp(`^${pkg.napi.binaryName}\\.(.+)\\.node$`).exec(entry.name)
      if (m) {
        if (found.has(m[1])) throw new Error(`two binaries for ${m[1]}: ${found.get(m[1])} and ${p}`)
        found.set(m[1], p)
      }
    }
  }
  if (fs.existsSync(dir)) walk(dir, 0)
  return found
}

function npmPack(dir, outDir) {
  const out = execFileSync(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', outDir], { cwd: dir, encoding: 'utf8' })
  return path.join(outDir, JSON.parse(out)[0].filename)
}

/** The files npm would pack from the repository root (its `files` list and npm's always-included ones). */
function rootFiles() {
  const out = execFileSync(NPM, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })
  return JSON.parse(out)[0].files.map((f) => f.path)
}

/** package.json as published: no scripts, no dev tooling, the platform packages as optional dependencies. */
function publishedManifest(platforms) {
  const manifest = { ...pkg }
  delete manifest.scripts
  delete manifest.devDependencies
  delete manifest.overrides
  manifest.optionalDependencies = Object.fromEntries(platforms.map((p) => [`${pkg.name}-${p}`, pkg.version]))
  return manifest
}

function main() {
  const { values } = parseArgs({
    options: {
      artifacts: { type: 'string', default: 'artifacts' },
      out: { type: 'string', default: 'dist' },
      'require-all': { type: 'boolean', default: false },
    },
  })
  const outDir = path.resolve(ROOT, values.out)
  const stage = path.join(outDir, 'stage')
  fs.rmSync(stage, { recursive: true, force: true })
  fs.mkdirSync(stage, { recursive: true })
  for (const f of fs.readdirSync(outDir)) if (f.endsWith('.tgz')) fs.rmSync(path.join(outDir, f))

  const platforms = publishedPlatforms()
  const binaries = findBinaries(path.resolve(ROOT, values.artifacts))
  const missing = platforms.filter((p) => !binaries.has(p))
  const unknown = [...binaries.keys()].filter((p) => !platforms.includes(p))
  if (unknown.length) throw new Error(`binaries for platforms not in package.json napi.targets: ${unknown.join(', ')}`)
  if (missing.length && values['require-all']) throw new Error(`no binary for: ${missing.join(', ')}`)
  if (missing.length) console.error(`pack: no binary for ${missing.join(', ')}: those packages are not packed`)

  // The platform packages, laid out by napi-rs's own CLI from (a copy of) package.json: it
  // writes only inside the project it runs in, so it runs in the staging folder.
  const napi = path.join(ROOT, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
  const npmDir = path.join(stage, 'npm')
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(stage, 'package.json'))
  execFileSync(process.execPath, [napi, 'create-npm-dirs', '--cwd', stage, '--npm-dir', 'npm'], { cwd: stage, stdio: ['ignore', 'ignore', 'inherit'] })
  const tarballs = []
  for (const platform of platforms) {
    if (!binaries.has(platform)) continue
    const dir = path.join(npmDir, platform)
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
    fs.copyFileSync(binaries.get(platform), path.join(dir, manifest.main))
    tarballs.push(npmPack(dir, outDir))
  }

  // The main package.
  const main = path.join(stage, pkg.name)
  for (const file of rootFiles()) {
    fs.mkdirSync(path.dirname(path.join(main, file)), { recursive: true })
    fs.copyFileSync(path.join(ROOT, file), path.join(main, file))
  }
  fs.writeFileSync(path.join(main, 'package.json'), `${JSON.stringify(publishedManifest(platforms), null, 2)}\n`)
  tarballs.push(npmPack(main, outDir))

  for (const t of tarballs) console.error(`pack: ${path.relative(process.cwd(), t)}`)
  console.log(JSON.stringify(tarballs))
}

main()
