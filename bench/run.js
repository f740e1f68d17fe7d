// fastify-realtime side by side with raw ws (three delivery loops) and
// Socket.IO 4. Each server runs in its own process, the clients in another, on
// loopback; rounds are interleaved and the table shows medians and ratios.
//
//   node bench/run.js [--quick] [--rounds N] [--servers a,b] [--budget seconds] [--skip-growth] [--connect-only] [--out file.json]
//
// --budget (default 540 s, so that `npm run bench` with its build and the
// memory-growth check stays under 10 minutes): no round starts when the
// rounds so far say it would not finish in time.
//
// Run `npm run build` first (`npm run bench` does): the plugin is imported by
// its package name, which resolves to dist/.
import { spawnSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { spawnChild } from './lib/ipc.js'
import { medians, rowsFor, table, targets } from './lib/report.js'
import { SERVERS, SUBJECT } from './servers/index.js'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const SERVER_HOST = fileURLToPath(new URL('server-host.js', import.meta.url))
const LOADGEN = fileURLToPath(new URL('loadgen.js', import.meta.url))
/** Pause between two servers' rounds. */
const SETTLE_MS = 1000

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    servers: { type: 'string' },
    budget: { type: 'string', default: '540' },
    'skip-growth': { type: 'boolean', default: false },
    'connect-only': { type: 'boolean', default: false },
    out: { type: 'string' }
  }
})

// Same payloads, same client, same sizes for every server. One round of one
// server: a connect storm (every client of the round, as many handshakes in
// flight as the load generator keeps going), memory per idle connection, then
// per connection in one room, the rooms joined, a warm-up, then the measured
// phases in a fixed order; last, more clients connect for the many-rooms chat.
const FULL = {
  rounds: 3,
  connections: 5001, // 5,000 subscribers of the big room plus the publisher
  smallRoom: 1000,
  smallK: 200, // as in the reference figures
  bigK: 30,
  warmupK: 20,
  pacedK: 12,
  pacedIntervalMs: 100, // 10 messages/s: 10,000 deliveries/s, below every server's capacity
  chatClients: 10000, // 5,000 rooms of two: clients 1 to 10,000 (4,999 more connect for it)
  chatM: 10,
  stormConcurrency: 256, // handshakes in flight: half the default listen backlog (511), so no SYN is dropped
  extraConcurrency: 256,
  joinConcurrency: 500,
  stallMs: 5000,
  growth: { connections: 10000, cycles: 3, m: 2 }
}
const QUICK = {
  ...FULL,
  rounds: 1,
  connections: 2001,
  smallK: 50,
  bigK: 10,
  warmupK: 10,
  pacedK: 5,
  chatClients: 4000,
  chatM: 5,
  growth: { connections: 2000, cycles: 3, m: 2 }
}

const config = flags.quick ? QUICK : FULL
const rounds = flags.rounds === undefined ? config.rounds : Number(flags.rounds)
const servers = flags.servers === undefined ? Object.keys(SERVERS).filter((s) => SERVERS[s].experimental !== true) : flags.servers.split(',')
for (const s of servers) if (SERVERS[s] === undefined) throw new Error(`unknown server ${s}; one of ${Object.keys(SERVERS).join(', ')}`)
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer')
const budgetSeconds = Number(flags.budget)
if (!(budgetSeconds > 0)) throw new Error('--budget must be a positive number of seconds')

function fileLimit () {
  const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' })
  const value = Number(out.stdout?.trim())
  return Number.isFinite(value) ? value : Infinity
}

function machine () {
  const cpus = os.cpus()
  return {
    cpus: cpus.length,
    model: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    fileLimit: fileLimit(),
    loadAverageAtStart: os.loadavg().map((l) => Number(l.toFixed(2)))
  }
}

/** Server CPU per delivery around one load-generator phase. */
async function measured (server, phase) {
  const cpu0 = await server.call('cpu')
  const run = await phase()
  const cpu1 = await server.call('cpu')
  const user = cpu1.user - cpu0.user
  const system = cpu1.system - cpu0.system
  const n = Math.max(1, run.delivered)
  const result = { ...run, cpuPerDelivery: (user + system) / n, cpuUserPerDelivery: user / n, cpuSystemPerDelivery: system / n }
  // an incomplete run does not count: its rate would flatter or slander the server
  if (!run.complete) result.perSecond = result.p50 = result.p99 = result.cpuPerDelivery = NaN
  return result
}

/** Heap and RSS growth per connection between two `memory` readings. */
function perConnection (before, after, count) {
  return { heap: (after.heapUsed - before.heapUsed) / count, rss: (after.rss - before.rss) / count }
}

/** One round of one server: fresh server and load-generator processes through every phase. */
async function runRound (kind, record) {
  const spec = SERVERS[kind]
  const server = spawnChild(SERVER_HOST, { args: [kind], execArgv: ['--expose-gc'] })
  const loadgen = spawnChild(LOADGEN)
  const { connections: count, smallRoom, stallMs } = config
  const call = (cmd, args) => loadgen.call(cmd, { stallMs, ...args }, 180_000)
  try {
    const { port, path } = await server.ready
    await loadgen.ready

    const before = await server.call('memory')
    const cpu0 = await server.call('cpu')
    const connected = await call('connect', { port, path, client: spec.client, count, concurrency: config.stormConcurrency })
    const cpu1 = await server.call('cpu')
    const idle = perConnection(before, await server.call('memory'), count)
    await call('join', { plans: [{ room: 'big', from: 0, to: count }], concurrency: config.joinConcurrency })
    const inRoom = perConnection(before, await server.call('memory'), count)
    record('connect', {
      perSecond: connected.perSecond,
      openP50: connected.openP50,
      openP99: connected.openP99,
      serverCpuPerConnection: (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / count,
      clientCpuPerConnection: connected.clientCpuPerConnection,
      heapPerConnection: idle.heap,
      rssPerConnection: idle.rss,
      heapPerConnectionInRoom: inRoom.heap,
      rssPerConnectionInRoom: inRoom.rss
    })

    if (flags['connect-only']) return
    const pairsTo = 1 + config.chatClients
    // more clients for the many-rooms chat, not measured
    if (pairsTo > count) await call('connect', { port, path, client: spec.client, count: pairsTo - count, concurrency: config.extraConcurrency })
    await call('join', {
      plans: [
        { room: 'small', from: 0, to: smallRoom + 1 },
        { room: 'pair', from: 1, to: pairsTo, pairs: true }
      ],
      concurrency: config.joinConcurrency
    })

    // unmeasured: lets every server's JIT warm up on the same work
    await call('burst', { room: 'small', to: smallRoom + 1, k: config.warmupK })
    await call('chat', { room: 'pair', from: 1, to: pairsTo, m: 2 })

    record('fanoutSmall', await measured(server, () => call('burst', { room: 'small', to: smallRoom + 1, k: config.smallK })))
    record('paced', await measured(server, () => call('paced', { room: 'small', to: smallRoom + 1, k: config.pacedK, intervalMs: config.pacedIntervalMs })))
    record('fanoutBig', await measured(server, () => call('burst', { room: 'big', to: count, k: config.bigK })))
    record('rooms', await measured(server, () => call('chat', { room: 'pair', from: 1, to: pairsTo, m: config.chatM })))
  } finally {
    // the load generator exits and the kernel closes its sockets, faster than 10,000 closing handshakes
    await loadgen.stop()
    await server.stop()
  }
}

/**
 * The memory-growth check, for one server: `cycles` times, open `connections`
 * clients, join them in rooms of two, chat, close them all (closing
 * handshakes) and wait until the server counts none; heap and RSS after each
 * cycle (after gc) against the baseline after the first.
 */
async function memoryGrowth (kind) {
  const spec = SERVERS[kind]
  const { connections, cycles, m } = config.growth
  const server = spawnChild(SERVER_HOST, { args: [kind], execArgv: ['--expose-gc'] })
  const loadgen = spawnChild(LOADGEN)
  const call = (cmd, args) => loadgen.call(cmd, { stallMs: config.stallMs, ...args }, 180_000)
  try {
    const { port, path } = await server.ready
    await loadgen.ready
    const start = await server.call('memory')
    const after = []
    for (let cycle = 0; cycle < cycles; cycle++) {
      await call('connect', { port, path, client: spec.client, count: connections, concurrency: config.stormConcurrency })
      await call('join', { plans: [{ room: 'pair', from: 0, to: connections, pairs: true }], concurrency: config.joinConcurrency })
      const chat = await call('chat', { room: 'pair', from: 0, to: connections, m })
      await call('leave', {})
      const deadline = Date.now() + 30_000
      while (await server.call('connections') > 0) {
        if (Date.now() > deadline) throw new Error(`cycle ${cycle + 1}: the server still counts connections 30 s after every client left`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      const memory = await server.call('memory')
      after.push({ ...memory, delivered: chat.delivered, expected: chat.expected })
      console.log(`growth ${SERVERS[kind].label.padEnd(16)} cycle ${cycle + 1}: heap ${(memory.heapUsed / 2 ** 20).toFixed(1)} MiB, RSS ${(memory.rss / 2 ** 20).toFixed(1)} MiB, chat ${chat.delivered}/${chat.expected}`)
    }
    const base = after[0]
    const last = after[after.length - 1]
    return {
      connections,
      cycles,
      start,
      after,
      heapGrowth: last.heapUsed / base.heapUsed - 1,
      rssGrowth: last.rss / base.rss - 1,
      heapGrowthFromStart: last.heapUsed / start.heapUsed - 1,
      complete: after.every((a) => a.delivered >= a.expected)
    }
  } finally {
    await loadgen.stop()
    await server.stop()
  }
}

function describe (phase, r) {
  if (phase === 'connect') return `${Math.round(r.perSecond)} upgrades/s, open p99 ${r.openP99.toFixed(0)} ms, server ${Math.round(r.serverCpuPerConnection)} µs, client ${Math.round(r.clientCpuPerConnection)} µs, heap ${Math.round(r.heapPerConnection)} B/conn (${Math.round(r.heapPerConnectionInRoom)} in a room), rss ${Math.round(r.rssPerConnection)} B/conn`
  const parts = [`${Math.round(r.perSecond).toLocaleString('en-US')}/s`, `p50 ${r.p50.toFixed(1)} ms`, `p99 ${r.p99.toFixed(1)} ms`, `server ${r.cpuPerDelivery.toFixed(2)} µs`, `client ${r.clientCpuPerDelivery.toFixed(2)} µs`]
  if (!r.complete) parts.push(`INCOMPLETE ${r.delivered}/${r.expected}`)
  if (r.errors > 0) parts.push(`${r.errors} errors`)
  return parts.join(', ')
}

/** With both the plugin and the plugin with metrics in the run: CPU per delivery, metrics on over off, for each fan-out. */
function metricsOverhead (figures, servers) {
  if (!servers.includes('realtime') || !servers.includes('realtime-metrics')) return undefined
  const out = {}
  for (const id of ['fanoutSmall.cpuPerDelivery', 'fanoutBig.cpuPerDelivery', 'rooms.cpuPerDelivery']) {
    out[id] = figures[id]['realtime-metrics'] / figures[id].realtime
  }
  return out
}

async function main () {
  const info = machine()
  const descriptors = Math.max(config.connections, config.chatClients + 1, config.growth.connections) + 256
  if (info.fileLimit < descriptors) {
    console.warn(`warning: ulimit -n is ${info.fileLimit}; the server and the load generator each need about ${descriptors} descriptors. Run \`ulimit -n 20000\` first.`)
  }
  console.log(`machine: ${info.cpus} cores (${info.model}), ${info.memoryGiB} GiB, ${info.platform}, node ${info.node}, ulimit -n ${info.fileLimit}, load ${info.loadAverageAtStart.join(' ')}`)
  console.log(`rounds: ${rounds}${flags.quick ? ' (quick)' : ''}; servers: ${servers.join(', ')}\n`)

  const started = Date.now()
  const samples = {}
  const failures = []
  let roundsRun = 0
  // Unmeasured: one pass of the first server before round 1. Without it whichever
  // server runs first in the whole run pays for a cold machine (measured: the
  // first server's paced p99 jumped to 20-28 ms, whichever server it was).
  try {
    await runRound(servers[0], () => {})
    console.log(`warm-up pass (not counted): ${SERVERS[servers[0]].label}`)
  } catch (err) {
    console.log(`warm-up pass failed, going on: ${String(err.message).split('\n')[0]}`)
  }
  for (let round = 0; round < rounds; round++) {
    const elapsed = (Date.now() - started) / 1000
    if (round > 0 && elapsed + elapsed / round > budgetSeconds) {
      console.log(`stopping after ${round} round(s): another would pass the ${budgetSeconds} s budget`)
      break
    }
    roundsRun++
    // rotate the order each round so no server always runs first or last
    const order = servers.map((_, i) => servers[(i + round) % servers.length])
    for (const kind of order) {
      const label = SERVERS[kind].label
      const record = (phase, result) => {
        ;((samples[phase] ??= {})[kind] ??= []).push(result)
        console.log(`round ${round + 1} ${label.padEnd(16)} ${phase.padEnd(11)} ${describe(phase, result)}`)
      }
      const t0 = Date.now()
      try {
        await runRound(kind, record)
        console.log(`round ${round + 1} ${label.padEnd(16)} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      } catch (err) {
        failures.push({ round: round + 1, server: kind, error: err.stack ?? String(err) })
        console.log(`round ${round + 1} ${label.padEnd(16)} FAILED: ${String(err.message).split('\n')[0]}`)
      }
      // let the kernel finish tearing down the last server's 5,000 sockets before the next starts
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    }
  }

  // the memory-growth check: the plugin, and raw ws beside it for scale
  const growth = {}
  if (!flags['skip-growth']) {
    for (const kind of [SUBJECT, 'ws-loop'].filter((k) => servers.includes(k))) {
      try {
        growth[kind] = await memoryGrowth(kind)
      } catch (err) {
        failures.push({ round: 'growth', server: kind, error: err.stack ?? String(err) })
        console.log(`growth ${SERVERS[kind].label.padEnd(16)} FAILED: ${String(err.message).split('\n')[0]}`)
      }
    }
  }

  const rows = rowsFor(config)
  const figures = medians(rows, samples, servers)
  const labels = Object.fromEntries(servers.map((s) => [s, SERVERS[s].label]))
  const seconds = (Date.now() - started) / 1000
  console.log(`\nMedians of ${roundsRun} round(s); rt = ${SERVERS[SUBJECT].label}; ${info.cpus} cores, node ${info.node}; ${seconds.toFixed(0)} s.\n`)
  console.log(table(rows, figures, servers, SUBJECT, labels))

  const verdicts = servers.includes(SUBJECT) ? targets(figures, config, SUBJECT).filter((t) => servers.includes(t.other)) : []
  if (verdicts.length > 0) {
    console.log('\nTargets of issues 6, 12 and 15 (ratio of fastify-realtime to the other server):')
    for (const t of verdicts) {
      const state = t.met === null ? 'n/a   ' : t.met ? 'met   ' : 'MISSED'
      console.log(`  ${state} ${t.target}: ${Number.isFinite(t.ratio) ? t.ratio.toFixed(2) + 'x' : 'n/a'}`)
    }
    console.log('  (the Redis cross-instance target is measured by bench/redis-throughput.js)')
  }
  for (const [kind, g] of Object.entries(growth)) {
    // a leak check: growth counts, shrinking (the allocator giving memory back) does not
    const within = g.heapGrowth <= 0.05 && g.rssGrowth <= 0.05 && g.complete
    const pct = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`
    console.log(`\nMemory growth, ${SERVERS[kind].label}: ${g.connections.toLocaleString('en-US')} connections opened, joined in rooms of two, chatted, closed, ${g.cycles} times.`)
    console.log(`  ${within ? 'met   ' : 'MISSED'} heap and RSS after the last cycle at most 5% above the first cycle's: heap ${pct(g.heapGrowth)}, RSS ${pct(g.rssGrowth)} (heap ${pct(g.heapGrowthFromStart)} from the idle server before any connection)`)
  }
  const metricsCost = metricsOverhead(figures, servers)
  if (metricsCost !== undefined) {
    console.log('\nMetrics on against off (realtime+metrics / fastify-realtime, server CPU per delivery; the target is at most 1.05):')
    for (const [row, ratio] of Object.entries(metricsCost)) console.log(`  ${row}: ${Number.isFinite(ratio) ? ratio.toFixed(3) + 'x' : 'n/a'}`)
  }
  if (failures.length > 0) console.log(`\n${failures.length} round(s) failed; see "failures" in the JSON.`)

  const report = {
    date: new Date().toISOString(),
    command: ['node bench/run.js', ...process.argv.slice(2)].join(' '),
    machine: { ...info, loadAverageAtEnd: os.loadavg().map((l) => Number(l.toFixed(2))) },
    config: { ...config, rounds, roundsRun, budgetSeconds },
    seconds,
    servers: labels,
    subject: SUBJECT,
    rows,
    medians: figures,
    targets: verdicts,
    metricsOverhead: metricsCost,
    growth,
    samples,
    failures
  }
  await mkdir(`${HERE}results`, { recursive: true })
  const out = flags.out ?? `${HERE}results/bench-${report.date.replace(/[:.]/g, '-')}.json`
  const json = JSON.stringify(report, null, 2) + '\n'
  await writeFile(out, json)
  await writeFile(`${HERE}results/latest.json`, json)
  console.log(`\nJSON: ${out.startsWith(HERE) ? 'bench/' + out.slice(HERE.length) : out}`)
}

await main()
