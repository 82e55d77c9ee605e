'use strict'
// A writer or reader process of the SharedMap case (cases/shared-map.js). It opens every
// store of the case (peers/map-stores.js) and then does what the parent asks, one command
// at a time, each a JSON line on stdin with an `id`, answered by JSON lines with that id:
//
//   {cmd:'fill'}                           one pass of sets (variant A) over every store
//                                          → {id, done}
//   {cmd:'sets', store, form, budgetMs, variant}
//   {cmd:'gets', store, form, budgetMs}    passes of chunks of the 10,000 keys until the
//                                          budget is spent (at least one chunk)
//                                          → {id, ops, ns} (ns: the whole timed loop)
//   {cmd:'observe', store, how, run, count, timeoutMs}
//                                          reader: sees the visibility key change `count`
//                                          times, by polling (poll() in a loop) or through
//                                          watch() → {id, observing} at once, then
//                                          {id, latencies, missed, seen}
//   {cmd:'publish', store, form, run, count, gapUs}
//                                          writer: `count` stamped values, one every ~gapUs
//                                          → {id, done}
//
// node map-client.js <role> <dir> <hub socket> <hub socket> <nsc name> <nsc name> <store> …
// Prints {"ready":true, missing} once the stores are open. Ends when stdin closes or the
// parent disappears.

const { print, fail, exitWithParent } = require('./common.js')
const { openStores, KEYS } = require('./map-stores.js')
const { VISIBLE_KEY, stampedValue, parseStamped } = require('./map-workload.js')

const CHUNK = 1_000 // keys per timed chunk: 10 chunks a pass
const BATCHED_CHUNK = KEYS // lmdb's put: a whole pass per write transaction
const sleeper = new Int32Array(new SharedArrayBuffer(4))

function sleepUs(us) {
  Atomics.wait(sleeper, 0, 0, us / 1000)
}

// Runs chunks of `form` from where the last call of this store left off until `budgetMs`
// has passed; returns { ops, ns }.
async function timed(form, cursor, budgetMs, args) {
  const chunk = form.batched ? BATCHED_CHUNK : CHUNK
  const budget = BigInt(Math.round(budgetMs * 1e6))
  let ops = 0
  const t0 = process.hrtime.bigint()
  let t = t0
  do {
    const from = cursor.next + chunk <= KEYS ? cursor.next : 0
    cursor.next = (from + chunk) % KEYS
    if (form.async) await form.run(from, chunk, ...args)
    else form.run(from, chunk, ...args)
    ops += chunk
    t = process.hrtime.bigint()
  } while (t - t0 < budget)
  return { ops, ns: Number(t - t0) }
}

// What the reader does with each value it reads of the visibility key: records the latency
// of every new write of this run, counts the writes it never saw (overwritten first).
function observer(run, count) {
  const latencies = []
  let last
  let lastSeq = -1
  let missed = 0
  return {
    latencies,
    get missed() {
      return missed
    },
    // true once the last write of the run was seen
    see(value, now) {
      if (value === last) return false
      last = value
      const stamp = parseStamped(value)
      if (stamp === null || stamp.run !== run || stamp.seq <= lastSeq) return false
      missed += stamp.seq - lastSeq - 1
      lastSeq = stamp.seq
      latencies.push(Number(now - stamp.t))
      return stamp.seq === count - 1
    },
  }
}

function pollSync(store, obs, deadline) {
  const { poll } = store
  let last
  for (let spins = 1; ; spins++) {
    const value = poll()
    if (value !== last) {
      last = value
      if (obs.see(value, process.hrtime.bigint())) return
    }
    if ((spins & 1023) === 0 && process.hrtime.bigint() > deadline) throw new Error('the last write never became visible')
  }
}

// A synchronous poll that gives the event loop one turn every `store.pollYieldUs` µs.
async function pollYielding(store, obs, deadline) {
  const { poll } = store
  const every = BigInt(store.pollYieldUs * 1000)
  let last
  let turn = process.hrtime.bigint() + every
  for (;;) {
    const value = poll()
    if (value !== last) {
      last = value
      if (obs.see(value, process.hrtime.bigint())) return
    }
    const now = process.hrtime.bigint()
    if (now >= turn) {
      if (now > deadline) throw new Error('the last write never became visible')
      await new Promise(setImmediate)
      turn = process.hrtime.bigint() + every
    }
  }
}

async function pollAsync(store, obs, deadline) {
  for (;;) {
    const value = await store.poll()
    if (obs.see(value, process.hrtime.bigint())) return
    if (process.hrtime.bigint() > deadline) throw new Error('the last write never became visible')
  }
}

function watchUntil(store, obs, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`the last write was not heard within ${timeoutMs} ms`)), timeoutMs)
    const stop = store.watch((value) => {
      if (obs.see(value, process.hrtime.bigint())) finish(null)
    })
    function finish(err) {
      clearTimeout(timer)
      stop()
      if (err) reject(err)
      else resolve()
    }
  })
}

async function observe({ id, store: name, how, run, count, timeoutMs }, stores) {
  const store = stores[name]
  const obs = observer(run, count)
  const deadline = process.hrtime.bigint() + BigInt(timeoutMs) * 1_000_000n
  if (how === 'watch') {
    const done = watchUntil(store, obs, timeoutMs)
    print({ id, observing: true })
    await done
  } else {
    print({ id, observing: true }) // pipes are synchronous on Linux: out before the spin starts
    if (store.pollAsync) await pollAsync(store, obs, deadline)
    else if (store.pollYieldUs) await pollYielding(store, obs, deadline)
    else pollSync(store, obs, deadline)
  }
  print({ id, latencies: obs.latencies, missed: obs.missed, seen: obs.latencies.length })
}

async function publish({ id, store: name, form, run, count, gapUs }, stores) {
  const set = stores[name].publish[form]
  for (let seq = 0; seq < count; seq++) {
    const t = process.hrtime.bigint()
    const pending = set(stampedValue(run, seq, t))
    if (pending && typeof pending.then === 'function') await pending
    // A gap of gapUs to 1.5 × gapUs (no phase lock with the reader), then one event-loop turn.
    sleepUs(gapUs * (1 + Math.random() / 2))
    await new Promise(setImmediate)
  }
  print({ id, done: true })
}

async function main() {
  const [role, dir, hubA, hubB, nscA, nscB, ...ids] = process.argv.slice(2)
  const { stores, missing } = await openStores(ids, { role, dir, hubSockets: [hubA, hubB], nscNames: [nscA, nscB] })
  const cursors = Object.fromEntries(Object.keys(stores).map((s) => [s, { next: 0 }]))
  const handle = async (command) => {
    const { id, cmd } = command
    const store = stores[command.store]
    if (command.store !== undefined && !store) throw new Error(`store ${command.store} is not open here`)
    switch (cmd) {
      case 'fill':
        for (const s of Object.values(stores)) {
          const form = Object.values(s.sets)[0]
          if (!form) continue
          if (form.async) await form.run(0, KEYS, 0)
          else form.run(0, KEYS, 0)
        }
        return print({ id, done: true })
      case 'sets':
        return print({ id, ...(await timed(formOf(store.sets, command), cursors[command.store], command.budgetMs, [command.variant])) })
      case 'gets':
        return print({ id, ...(await timed(formOf(store.gets, command), cursors[command.store], command.budgetMs, [])) })
      case 'observe':
        return observe(command, stores)
      case 'publish':
        return publish(command, stores)
      default:
        throw new Error(`unknown command ${cmd}`)
    }
  }
  let queue = Promise.resolve()
  let partial = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop()
    for (const line of lines) {
      if (!line.trim()) continue
      const command = JSON.parse(line)
      queue = queue.then(() => handle(command)).catch(fail)
    }
  })
  exitWithParent(() => {
    for (const s of Object.values(stores)) s.close()
  })
  print({ ready: true, missing, visibleKey: VISIBLE_KEY })
}

function formOf(forms, { store, form }) {
  const found = forms[form]
  if (!found) throw new Error(`${store} has no form ${form}`)
  return found
}

main().catch(fail)
