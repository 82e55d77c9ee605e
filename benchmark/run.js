'use strict'
// share-object benchmark harness (issues #5 and #12): measures share-object against the usual
// alternatives in one run on one machine and reports ratios.
//
//   npm run bench                 full run (about 3 minutes), writes benchmark/results.json + .svg
//   npm run bench -- --quick      smoke mode: every case briefly (a few seconds); results go
//                                 to the temp folder (checked, then removed) unless --out
//   npm run bench -- --out DIR    write results.json and results.svg to DIR instead
//   npm run bench -- --only ID    run one case (latest-value, round-trip, channel-streaming,
//                                 footprint, keyv, shared-map); results go to the temp
//                                 folder unless --out
//
// Cases (each file's header says what it measures and how):
//   1. cases/latest-value.js  read()/write() of a 1 KiB string vs fs.readFileSync/writeFileSync
//   1b. cases/large-value.js  4 MiB reads under a writer looping 4 MiB values vs uncontended
//                             (p99), and the writer's rate with and without a reader
//   1c. cases/object-values.js  objects through the default codec vs JSON + fs
//   2. cases/round-trip.js    cross-process round trip: waitForChangeSync, waitForChange,
//                             watch, Channel receiveSync / recv vs Unix socket,
//                             child_process IPC, worker + Atomics.wait
//   3. cases/channel-streaming.js  one-way streaming of 64 B / 1 KiB / 64 KiB messages from a
//                             child: Channel single, batch and consume forms vs a Unix socket
//                             (per-message and coalesced writes) and an in-process copy
//   4. cases/footprint.js     RSS / maps lines / fds for 100 segments and 1,000,000 calls
//   5. cases/keyv.js          Keyv over share-object/keyv vs Keyv's default Map and
//                             @keyv/sqlite: gets/sets per second through Keyv, and the time
//                             until a set is visible in another process
//   6. cases/shared-map.js    SharedMap vs lmdb, a Unix-socket hub and node-shared-cache-x:
//                             gets/s and sets/s across a writer and a reader process, how
//                             soon a set is seen, disk / RSS / open() of 1,000,000 entries
//
// The Markdown report goes to stdout, progress to stderr. Temp files live in a fresh
// mkdtemp folder under os.tmpdir(), removed at the end; every child process is killed by
// pid at the end, even on error (harness/cleanup.js).

const fs = require('node:fs')
const path = require('node:path')
const { tempFolder, cleanup } = require('./harness/cleanup.js')
const { machineInfo, busyCores } = require('./harness/machine.js')
const { evaluate } = require('./harness/targets.js')
const markdown = require('./harness/markdown.js')
const svg = require('./harness/svg.js')

const SUITES = [
  { id: 'latest-value', title: '1. Latest value', run: (ctx) => require('./cases/latest-value.js').run(ctx) },
  { id: 'large-value', title: '1b. Large value under a busy writer', run: (ctx) => require('./cases/large-value.js').run(ctx) },
  { id: 'object-values', title: '1c. Objects as values', run: (ctx) => require('./cases/object-values.js').run(ctx) },
  { id: 'round-trip', title: '2. Cross-process round trip', run: (ctx) => require('./cases/round-trip.js').run(ctx) },
  { id: 'channel-streaming', title: '3. Channel streaming', run: (ctx) => require('./cases/channel-streaming.js').run(ctx) },
  { id: 'footprint', title: '4. Footprint', run: (ctx) => require('./cases/footprint.js').run(ctx) },
  { id: 'keyv', title: '5. Keyv stores', run: (ctx) => require('./cases/keyv.js').run(ctx) },
  { id: 'shared-map', title: '6. SharedMap', run: (ctx) => require('./cases/shared-map.js').run(ctx) },
]

function parseArgs(argv) {
  const args = { quick: false, out: null, only: null }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--quick') args.quick = true
    else if (argv[i] === '--out') args.out = path.resolve(argv[++i] ?? '')
    else if (argv[i] === '--only') args.only = argv[++i] ?? ''
    else if (argv[i] === '--help' || argv[i] === '-h') args.help = true
    else throw new Error(`unknown argument ${argv[i]} (use --quick, --out DIR, --only ID)`)
  }
  if (args.only !== null && !SUITES.some((s) => s.id === args.only)) {
    throw new Error(`unknown case ${JSON.stringify(args.only)} (one of ${SUITES.map((s) => s.id).join(', ')})`)
  }
  return args
}

async function runSuites(ctx, only) {
  const sections = []
  for (const suite of SUITES) {
    if (only !== null && suite.id !== only) continue
    const started = Date.now()
    process.stderr.write(`bench: ${suite.title} …`)
    sections.push(await suite.run(ctx))
    process.stderr.write(` ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  }
  return sections
}

// Writes results.json and results.svg, then reads them back as a check of the harness.
function writeOutputs(results, outDir) {
  fs.mkdirSync(outDir, { recursive: true })
  const jsonPath = path.join(outDir, 'results.json')
  const svgPath = path.join(outDir, 'results.svg')
  fs.writeFileSync(jsonPath, JSON.stringify(results, null, 2) + '\n')
  fs.writeFileSync(svgPath, svg.render(results))
  JSON.parse(fs.readFileSync(jsonPath, 'utf8'))
  if (!/^<svg[\s\S]*<\/svg>\s*$/.test(fs.readFileSync(svgPath, 'utf8'))) throw new Error('results.svg is not a complete SVG document')
  return { jsonPath, svgPath }
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  if (args.help) {
    // The header comment, up to its first blank line.
    const lines = fs.readFileSync(__filename, 'utf8').split('\n').slice(1)
    process.stdout.write(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).join('\n') + '\n')
    return
  }
  const started = Date.now()
  const dir = tempFolder()
  const machine = await machineInfo()
  const sections = await runSuites({ dir, quick: args.quick }, args.only)
  machine.busyCoresAtEnd = await busyCores()
  const results = { quick: args.quick, machine, durationMs: 0, sections, targets: [] }
  results.targets = evaluate(results)
  results.durationMs = Date.now() - started
  const outDir = args.out || (args.quick || args.only !== null ? path.join(dir, 'out') : __dirname)
  const { jsonPath, svgPath } = writeOutputs(results, outDir)
  process.stdout.write(markdown.render(results))
  const kept = outDir.startsWith(dir) ? ' (quick or partial run: checked, then removed with the temp folder)' : ''
  process.stderr.write(`bench: wrote ${jsonPath} and ${svgPath}${kept}; ${(results.durationMs / 1000).toFixed(1)} s in all\n`)
}

process.on('unhandledRejection', (err) => {
  throw err // to the uncaughtException handler below
})
process.on('uncaughtException', (err) => {
  finished = true
  process.stderr.write(`\nbench failed: ${(err && err.stack) || err}\n`)
  cleanup()
  process.exit(1)
})

// If the event loop drains while a case still waits, some wake-up was lost: fail loudly
// instead of exiting 0 with half a report.
let finished = false
process.on('beforeExit', () => {
  if (finished) return
  finished = true
  process.stderr.write('\nbench failed: the event loop drained while a case was still waiting (a lost wake-up?)\n')
  process.exitCode = 1
  cleanup()
})

main()
  .then(() => {
    finished = true
  })
  .catch((err) => {
    finished = true
    process.stderr.write(`\nbench failed: ${(err && err.stack) || err}\n`)
    process.exitCode = 1
  })
  .finally(cleanup)
