'use strict'

// Platform names as napi-rs spells them (linux-x64-gnu, darwin-arm64, win32-x64-msvc, …): the
// suffix of each prebuilt package (`share-object-<platform>`) and of a binary built from source
// (`share-object.<platform>.node`). Used by the loader (lib/native.js) and the packaging script.

const fs = require('node:fs')
const pkg = require('../package.json')

// Rust target triple (package.json `napi.targets`) -> napi-rs platform name, e.g.
// x86_64-unknown-linux-gnu -> linux-x64-gnu, aarch64-apple-darwin -> darwin-arm64.
const CPU = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm', riscv64gc: 'riscv64', powerpc64le: 'ppc64', s390x: 's390x' }
const SYS = { linux: 'linux', darwin: 'darwin', windows: 'win32', freebsd: 'freebsd' }

function platformOfTarget(triple) {
  const parts = triple.split('-')
  const cpu = CPU[parts[0]] ?? parts[0]
  const sys = SYS[parts[2]] ?? parts[2]
  const abi = parts[3]
  return abi ? `${sys}-${cpu}-${abi}` : `${sys}-${cpu}`
}

/** The platforms that have a prebuilt package (package.json `napi.targets`), as napi-rs names them. */
function publishedPlatforms(targets = pkg.napi?.targets ?? []) {
  return targets.map(platformOfTarget)
}

function isMusl() {
  // As napi-rs detects it: glibc's ldd is a script that never says "musl"; musl's ldd is musl.
  try {
    return fs.readFileSync('/usr/bin/ldd', 'latin1').includes('musl')
  } catch {}
  try {
    const report = process.report?.getReport?.()
    const header = typeof report === 'string' ? JSON.parse(report).header : report?.header
    return !header?.glibcVersionRuntime
  } catch {
    return false
  }
}

/** This process's platform as napi-rs names it: linux-x64-gnu, darwin-arm64, win32-x64-msvc, … */
function detectPlatform(platform = process.platform, arch = process.arch) {
  if (platform === 'linux') {
    const abi = isMusl() ? 'musl' : 'gnu'
    return `linux-${arch}-${arch === 'arm' ? `${abi}eabihf` : abi}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

module.exports = { detectPlatform, platformOfTarget, publishedPlatforms }
