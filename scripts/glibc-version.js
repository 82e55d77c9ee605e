#!/usr/bin/env node
'use strict'

// The glibc a Linux binary needs: the highest GLIBC_x.y version among the symbol versions it
// requires (the ELF `.gnu.version_r` section, what `readelf -V` prints under "Version needs").
// A binary loads only where the system's glibc is at least that version.
//   node scripts/glibc-version.js file.node [--max 2.17]   prints e.g. "GLIBC_2.17"; with --max,
//                                                           exits 1 if the binary needs more

const fs = require('node:fs')

const SHT_GNU_VERNEED = 0x6ffffffe

/**
 * The symbol versions an ELF file requires, by library: { 'libc.so.6': ['GLIBC_2.2.5', …], … }.
 * Reads 64- and 32-bit, little- and big-endian files; throws on anything that is not ELF.
 */
function versionNeeds(file) {
  const b = fs.readFileSync(file)
  if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`)
  const is64 = b[4] === 2
  const le = b[5] === 1
  const u16 = (o) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o))
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o))
  const addr = (o) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(o))
  const at = (o, what) => {
    if (!Number.isSafeInteger(o) || o < 0 || o >= b.length) throw new Error(`${file}: ${what} at ${o} is outside the file`)
    return o
  }

  const shoff = addr(is64 ? 0x28 : 0x20)
  const shentsize = u16(is64 ? 0x3a : 0x2e)
  const shnum = u16(is64 ? 0x3c : 0x30)
  const section = (i) => {
    const o = at(shoff + i * shentsize, 'section header')
    return {
      type: u32(o + 4),
      offset: addr(o + (is64 ? 0x18 : 0x10)),
      link: u32(o + (is64 ? 0x28 : 0x18)),
      info: u32(o + (is64 ? 0x2c : 0x1c)),
    }
  }
  const cstring = (o) => {
    const end = b.indexOf(0, at(o, 'string'))
    return b.toString('latin1', o, end === -1 ? b.length : end)
  }

  const needs = {}
  for (let i = 0; i < shnum; i++) {
    const s = section(i)
    if (s.type !== SHT_GNU_VERNEED) continue
    const strtab = section(s.link).offset
    // Verneed entries (vn_version, vn_cnt, vn_file, vn_aux, vn_next), each with vn_cnt Vernaux
    // entries (vna_hash, vna_flags, vna_other, vna_name, vna_next); sh_info counts the Verneeds.
    let vn = at(s.offset, 'version needs')
    for (let n = 0; n < s.info; n++) {
      const lib = cstring(strtab + u32(vn + 4))
      const names = (needs[lib] ??= [])
      let aux = at(vn + u32(vn + 8), 'version need entry')
      for (let k = 0, cnt = u16(vn + 2); k < cnt; k++) {
        names.push(cstring(strtab + u32(aux + 8)))
        aux = at(aux + u32(aux + 12), 'version need entry')
      }
      vn += u32(vn + 12)
    }
  }
  return needs
}

function parseGlibc(name) {
  const m = /^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$/.exec(name)
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null
}

function compare(a, b) {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2]
}

/** The highest GLIBC_x.y version the file requires (e.g. 'GLIBC_2.17'), or null if none. */
function highestGlibc(file) {
  let best = null
  for (const names of Object.values(versionNeeds(file))) {
    for (const name of names) {
      const v = parseGlibc(name)
      if (v && (best === null || compare(v, best.v) > 0)) best = { name, v }
    }
  }
  return best?.name ?? null
}

module.exports = { versionNeeds, highestGlibc, parseGlibc, compare }

if (require.main === module) {
  const [file, flag, max] = process.argv.slice(2)
  if (!file || (flag !== undefined && (flag !== '--max' || !parseGlibc(`GLIBC_${max}`)))) {
    console.error('usage: node scripts/glibc-version.js <file> [--max x.y]')
    process.exit(2)
  }
  const found = highestGlibc(file)
  console.log(found ?? 'no GLIBC symbol versions')
  if (max && found && compare(parseGlibc(found), parseGlibc(`GLIBC_${max}`)) > 0) {
    console.error(`${file} needs ${found}, more than glibc ${max}`)
    process.exit(1)
  }
}
