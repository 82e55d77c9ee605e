'use strict'

// Finds and loads the native addon, in this order:
//   1. `share-object.<platform>.node` beside package.json: a build from source (`npm run build`);
//   2. the package `share-object-<platform>`: the prebuilt binary npm installs as an optional
//      dependency (one package per platform, the napi-rs layout).
// When neither loads, the error names the platform detected, the platforms that have a
// prebuilt package, and how to build from source. Plain CommonJS that Node, Bun and Deno run.

const fs = require('node:fs')
const path = require('node:path')
const pkg = require('../package.json')
const { detectPlatform, publishedPlatforms } = require('./platform.js')

const ROOT = path.join(__dirname, '..')
const PUBLISHED = publishedPlatforms()

function coded(code, message, cause) {
  const err = new Error(message, cause === undefined ? undefined : { cause })
  err.code = code
  return err
}

function buildHint(platform) {
  const checkout = fs.existsSync(path.join(ROOT, 'Cargo.toml'))
  const where = checkout
    ? 'in this checkout'
    : `in a clone of ${pkg.name}'s source repository (then install that folder: npm install /path/to/clone)`
  return `To build from source: with Rust's cargo on PATH (https://rustup.rs), run \`npm install\` and \`npm run build\` ${where}; the build writes ${pkg.name}.${platform}.node beside package.json, which is loaded first.`
}

function notFound(platform, tried) {
  const published = PUBLISHED.includes(platform)
  const lines = [
    `${pkg.name}: no native binary for this platform (${platform}).`,
    `Prebuilt binaries are published for: ${PUBLISHED.join(', ')} (packages ${pkg.name}-<platform>, installed by npm as optional dependencies).`,
  ]
  if (published) {
    lines.push(
      `Your platform is among them, but ${pkg.name}-${platform} is not installed: optional dependencies were left out ` +
        `(--omit=optional, --no-optional) or the lockfile was written on another platform. ` +
        `Install it: npm install ${pkg.name}-${platform}@${pkg.version}`,
    )
  }
  lines.push(buildHint(platform), `Looked for: ${tried.join('; ')}.`)
  return coded('ERR_NATIVE_BINDING_NOT_FOUND', lines.join('\n'))
}

function loadFailed(platform, file, cause) {
  const glibc = /GLIBC_[0-9.]+' not found/.test(String(cause?.message))
  const lines = [
    `${pkg.name}: the native binary ${file} was found but cannot be loaded here (${platform}): ${cause?.message ?? cause}`,
  ]
  if (glibc) lines.push('It needs a newer glibc than this system has. The published Linux binaries need glibc 2.17 or later.')
  lines.push(buildHint(platform))
  return coded('ERR_NATIVE_BINDING_LOAD_FAILED', lines.join('\n'), cause)
}

function isMissing(err, request) {
  return err?.code === 'MODULE_NOT_FOUND' && String(err.message).includes(request)
}

function load() {
  const platform = detectPlatform()
  const tried = []

  // 1. A build from source beside package.json.
  const local = path.join(ROOT, `${pkg.name}.${platform}.node`)
  tried.push(local)
  if (fs.existsSync(local)) {
    try {
      return require(local)
    } catch (err) {
      throw loadFailed(platform, local, err)
    }
  }

  // 2. The prebuilt package for this platform.
  const name = `${pkg.name}-${platform}`
  tried.push(`the package ${name}`)
  let manifest
  try {
    manifest = require(`${name}/package.json`)
  } catch (err) {
    if (isMissing(err, name)) throw notFound(platform, tried)
    throw loadFailed(platform, `${name}/package.json`, err)
  }
  if (manifest.version !== pkg.version) {
    throw coded(
      'ERR_NATIVE_BINDING_LOAD_FAILED',
      `${pkg.name}@${pkg.version} needs ${name}@${pkg.version}, but ${manifest.version} is installed: reinstall (npm install ${name}@${pkg.version}).`,
    )
  }
  try {
    return require(name)
  } catch (err) {
    throw loadFailed(platform, name, err)
  }
}

module.exports = load()
