'use strict'

// Tools the release build and the compatibility tests fetch from package registries, kept in a
// cache folder outside the clone so that repeated runs (CI included) download nothing:
//   $SHARE_OBJECT_CACHE, else $XDG_CACHE_HOME/share-object, else ~/.cache/share-object.
// Each tool is installed into a temp folder beside its final one and renamed into place once it
// works, so an interrupted or concurrent run never leaves a half-installed tool behind.

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

/** The zig toolchain for glibc-pinned Linux builds (PyPI packages; bump both together). */
const ZIG = { ziglang: '0.17.1', 'cargo-zigbuild': '0.24.1' }

function cacheDir() {
  if (process.env.SHARE_OBJECT_CACHE) return path.resolve(process.env.SHARE_OBJECT_CACHE)
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
  return path.join(base, 'share-object')
}

function log(message) {
  process.stderr.write(`share-object cache: ${message}\n`)
}

/**
 * Returns `dir` (under the cache) once it holds a working install: runs `install(tmp)` into a
 * fresh temp folder, then `check(tmp)` (which throws if the install is unusable), then renames
 * it to `dir`. An existing `dir` with its `.complete` marker is returned as it is.
 */
function ensureInstalled(dir, what, install, check) {
  const marker = path.join(dir, '.complete')
  if (fs.existsSync(marker)) return dir
  fs.mkdirSync(path.dirname(dir), { recursive: true })
  const tmp = fs.mkdtempSync(`${dir}.tmp-`)
  try {
    log(`installing ${what} into ${dir}`)
    install(tmp)
    check(tmp)
    fs.writeFileSync(path.join(tmp, '.complete'), `${what}\n`)
    try {
      fs.renameSync(tmp, dir)
    } catch (err) {
      // Another run finished first (its folder is there and complete): use that one.
      if (!fs.existsSync(marker)) {
        fs.rmSync(dir, { recursive: true, force: true })
        fs.renameSync(tmp, dir)
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  return dir
}

function npmCommand() {
  return process.platform === 'win32' ? 'npm.cmd' : 'npm'
}

/**
 * Installs the npm package `spec` (an exact `name@version`) into the cache without running its
 * install scripts, and returns the folder that holds its node_modules.
 */
function ensureNpmPackage(spec, check = () => {}) {
  const dir = path.join(cacheDir(), 'npm', spec.replace('/', '+'))
  return ensureInstalled(
    dir,
    spec,
    (tmp) => {
      fs.writeFileSync(path.join(tmp, 'package.json'), '{ "private": true }\n')
      execFileSync(npmCommand(), ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error', spec], {
        cwd: tmp,
        stdio: ['ignore', 'ignore', 'inherit'],
      })
    },
    check,
  )
}

/**
 * The zig toolchain (ziglang and cargo-zigbuild from PyPI, in a virtualenv in the cache) and
 * the environment that puts `zig` and `cargo-zigbuild` on PATH.
 */
function ensureZig() {
  const python = process.env.PYTHON || (process.platform === 'win32' ? 'python' : 'python3')
  const dir = path.join(cacheDir(), 'zig', `ziglang-${ZIG.ziglang}+cargo-zigbuild-${ZIG['cargo-zigbuild']}`)
  const bin = (root) => path.join(root, 'bin')
  ensureInstalled(
    dir,
    `ziglang ${ZIG.ziglang}, cargo-zigbuild ${ZIG['cargo-zigbuild']}`,
    (tmp) => {
      execFileSync(python, ['-m', 'venv', path.join(tmp, 'venv')], { stdio: ['ignore', 'ignore', 'inherit'] })
      const pip = path.join(tmp, 'venv', 'bin', 'pip')
      const specs = Object.entries(ZIG).map(([name, version]) => `${name}==${version}`)
      execFileSync(pip, ['install', '--quiet', '--disable-pip-version-check', ...specs], { stdio: ['ignore', 'ignore', 'inherit'] })
      // ziglang ships the zig executable inside its Python package; put it on PATH by name.
      // Relative links: the folder is renamed into place afterwards.
      const venvPython = path.join(tmp, 'venv', 'bin', 'python')
      const pkgDir = execFileSync(venvPython, ['-c', 'import ziglang, os; print(os.path.dirname(ziglang.__file__))'], { encoding: 'utf8' }).trim()
      fs.mkdirSync(bin(tmp))
      fs.symlinkSync(path.relative(bin(tmp), path.join(pkgDir, 'zig')), path.join(bin(tmp), 'zig'))
      fs.symlinkSync(path.join('..', 'venv', 'bin', 'cargo-zigbuild'), path.join(bin(tmp), 'cargo-zigbuild'))
    },
    (tmp) => {
      execFileSync(path.join(bin(tmp), 'zig'), ['version'], { stdio: 'ignore' })
      execFileSync(path.join(bin(tmp), 'cargo-zigbuild'), ['--version'], { stdio: 'ignore' })
    },
  )
  return { ...process.env, PATH: `${bin(dir)}${path.delimiter}${process.env.PATH}` }
}

module.exports = { cacheDir, ensureInstalled, ensureNpmPackage, ensureZig, ZIG }
