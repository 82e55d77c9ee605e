#!/usr/bin/env node
'use strict'

// Builds the release binary that a platform package ships:
//   node scripts/build-release.js [--target <rust triple>] [--out-dir <dir>]
// writes <out-dir>/share-object.<platform>.node (default out-dir: artifacts/). Linux glibc
// targets are built through zig (cargo-zigbuild, fetched from PyPI into the cache) against
// glibc 2.17, so the binary loads on every Linux distribution from 2014 on (Debian 8+, Ubuntu
// 14.04+, RHEL/CentOS 7+, Amazon Linux 2); the build fails if the result needs a newer glibc.
// Other targets are a plain `napi build` on a host of that platform (the GitHub workflow).

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { parseArgs } = require('node:util')
const { ensureZig } = require('./cache.js')
const { highestGlibc, parseGlibc, compare } = require('./glibc-version.js')
const { platformOfTarget } = require('../lib/platform.js')
const pkg = require('../package.json')

const GLIBC = '2.17'
const ROOT = path.join(__dirname, '..')

function hostTarget() {
  const out = execFileSync('rustc', ['-vV'], { encoding: 'utf8' })
  return /^host: (\S+)$/m.exec(out)[1]
}

function main() {
  const { values } = parseArgs({
    options: { target: { type: 'string' }, 'out-dir': { type: 'string', default: 'artifacts' } },
  })
  const target = values.target ?? hostTarget()
  const outDir = path.resolve(ROOT, values['out-dir'])
  const platform = platformOfTarget(target)
  const glibcPinned = /-linux-gnu/.test(target)

  const napi = path.join(ROOT, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
  // The typings go to a scratch folder: they are the source build's business (binding.d.ts).
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'share-object-build-'))
  const args = [napi, 'build', '--platform', '--release', '--no-js', '--output-dir', scratch]
  let env = process.env
  if (glibcPinned) {
    env = ensureZig()
    args.push('--target', `${target}.${GLIBC}`, '--cross-compile')
  } else {
    args.push('--target', target)
  }
  try {
    execFileSync(process.execPath, args, { cwd: ROOT, env, stdio: 'inherit' })
    const name = `${pkg.napi.binaryName}.${platform}.node`
    fs.mkdirSync(outDir, { recursive: true })
    fs.copyFileSync(path.join(scratch, name), path.join(outDir, name))
    const file = path.join(outDir, name)
    if (glibcPinned) {
      const needs = highestGlibc(file)
      if (needs && compare(parseGlibc(needs), parseGlibc(`GLIBC_${GLIBC}`)) > 0) {
        throw new Error(`${file} needs ${needs}, more than the glibc ${GLIBC} it was built for`)
      }
      console.log(`${file}: needs ${needs ?? 'no GLIBC version'} (at most GLIBC_${GLIBC})`)
    } else {
      console.log(file)
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

main()
