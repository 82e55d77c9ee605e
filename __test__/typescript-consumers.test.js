'use strict'
// The typings as TypeScript projects see them when share-object is a dependency: the
// default import and the named imports type-check under each common module setting
// (`tsc -p __test__` covers the API itself, under node16), and what type-checks runs.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { tempDir, exitOf } = require('./helpers.js')

const ROOT = path.join(__dirname, '..')
const TSC = require.resolve('typescript/bin/tsc')

// A project folder in which `share-object` resolves to this package, as if installed.
function project(t) {
  const dir = tempDir(t)
  fs.mkdirSync(path.join(dir, 'node_modules', '@types'), { recursive: true })
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'share-object'))
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(dir, 'node_modules', '@types', 'node'))
  const consumer = [
    "import shareObject from 'share-object'",
    "import { read, SharedObject, Channel } from 'share-object'",
    'const value: string = shareObject.read() + read()',
    'const classes: [typeof SharedObject, typeof Channel] = [shareObject.SharedObject, shareObject.Channel]',
    'void [value, classes]',
    '',
  ].join('\n')
  fs.writeFileSync(path.join(dir, 'consumer.ts'), consumer)
  fs.writeFileSync(path.join(dir, 'consumer.mts'), consumer)
  return dir
}

async function tsc(t, dir, compilerOptions, files) {
  const config = { compilerOptions: { strict: true, noEmit: true, types: ['node'], skipLibCheck: false, ...compilerOptions }, files }
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config))
  const child = spawn(process.execPath, [TSC, '-p', dir], { cwd: dir })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  child.stderrText = '' // for exitOf's message
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const { code } = await exitOf(child, 60_000, 'tsc')
  return { code, output }
}

const SETTINGS = [
  ['CommonJS without esModuleInterop', { module: 'commonjs' }, ['consumer.ts']],
  ['CommonJS with esModuleInterop', { module: 'commonjs', esModuleInterop: true }, ['consumer.ts']],
  ['node16, CommonJS and ES module files', { module: 'node16' }, ['consumer.ts', 'consumer.mts']],
  ['a bundler', { module: 'esnext', moduleResolution: 'bundler' }, ['consumer.ts']],
]

for (const [name, options, files] of SETTINGS) {
  test(`the default and named imports type-check: ${name}`, async (t) => {
    const dir = project(t)
    const r = await tsc(t, dir, options, files)
    assert.equal(r.code, 0, r.output)
  })
}

test('the README\'s TypeScript examples type-check', async (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const examples = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1])
  assert.ok(examples.length > 0, 'no ```ts block in the README')
  const dir = project(t)
  const files = examples.map((code, i) => {
    fs.writeFileSync(path.join(dir, `readme-${i + 1}.ts`), code)
    return `readme-${i + 1}.ts`
  })
  for (const options of [{ module: 'node16' }, { module: 'commonjs' }]) {
    const r = await tsc(t, dir, options, files)
    assert.equal(r.code, 0, r.output)
  }
})

test('the default import works at run time as typed: CommonJS without interop reads .default', () => {
  const shareObject = require('..')
  assert.equal(shareObject.default, shareObject)
  assert.deepEqual(Object.keys(shareObject).sort(), ['Channel', 'SharedMap', 'SharedObject', 'read', 'write'])
})
