// What the metrics option costs per delivery: the plugin with metrics off and
// with metrics on, side by side, measured in alternating pairs of fan-out
// bursts so that whatever else the machine does weighs on both alike.
//
//   node bench/metrics-overhead.js [--pairs 40] [--sessions 4] [--subscribers 1000] [--k 200] [--big 5000] [--bigK 30]
//   node bench/metrics-overhead.js --on realtime    # an A/A run: the noise floor of the method
//
// Two server processes (bench/servers/realtime.js with metrics off and on) and
// one load generator each, on loopback, started afresh for each of `sessions`.
// Every pair runs one burst on each server, the order alternating (off/on,
// then on/off); each burst reads that server's own CPU time (user + system)
// around it. The figure is the median of
// the pairs' ratios (on / off) of server CPU per delivery, with the quartiles,
// for a room of `subscribers` and, unless --big 0, a room of `big`.
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { spawnChild } from './lib/ipc.js'
import { median, percentile } from './lib/stats.js'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const SERVER_HOST = fileURLToPath(new URL('server-host.js', import.meta.url))
const LOADGEN = fileURLToPath(new URL('loadgen.js', import.meta.url))

const { values: flags } = parseArgs({
  options: {
    pairs: { type: 'string', default: '40' },
    sessions: { type: 'string', default: '4' },
    subscribers: { type: 'string', default: '1000' },
    k: { type: 'string', default: '200' },
    big: { type: 'string', default: '5000' },
    bigK: { type: 'string', default: '30' },
    off: { type: 'string', default: 'realtime' },
    on: { type: 'string', default: 'realtime-metrics' }
  }
})
const pairs = Number(flags.pairs)
const sessions = Number(flags.sessions)
const subscribers = Number(flags.subscribers)
const k = Number(flags.k)
const big = Number(flags.big)
const bigK = Number(flags.bigK)
const KINDS = { off: flags.off, on: flags.on }
const STALL_MS = 10_000

function quantile (values, q) {
  return percentile([...values].sort((a, b) => a - b), q)
}

async function startSide (kind) {
  const server = spawnChild(SERVER_HOST, { args: [kind], execArgv: ['--expose-gc'] })
  const loadgen = spawnChild(LOADGEN)
  const { port, path } = await server.ready
  await loadgen.ready
  const count = Math.max(subscribers, big) + 1
  const call = (cmd, args) => loadgen.call(cmd, { stallMs: STALL_MS, ...args }, 300_000)
  await call('connect', { port, path, client: 'ws', count, concurrency: 32 })
  const plans = [{ room: 'small', from: 0, to: subscribers + 1 }]
  if (big > 0) plans.push({ room: 'big', from: 0, to: big + 1 })
  await call('join', { plans, concurrency: 500 })
  return { server, loadgen, call }
}

/** One burst on one side: server CPU µs per delivery. */
async function burst (side, room, to, count) {
  const cpu0 = await side.server.call('cpu')
  const run = await side.call('burst', { room, to, k: count })
  const cpu1 = await side.server.call('cpu')
  if (!run.complete) throw new Error(`incomplete burst: ${run.delivered}/${run.expected}`)
  return (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / run.delivered
}

async function main () {
  const started = Date.now()
  console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0]?.model}), node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  console.log(`off: ${KINDS.off}, on: ${KINDS.on}; ${pairs} pairs in ${sessions} sessions`)
  const phases = [{ name: `fan-out ${subscribers}`, room: 'small', to: subscribers + 1, k }]
  if (big > 0) phases.push({ name: `fan-out ${big}`, room: 'big', to: big + 1, k: bigK })
  const samples = Object.fromEntries(phases.map((phase) => [phase.name, { off: [], on: [], ratio: [] }]))
  // fresh processes each session: a process that lands on a busier core does not bias every pair
  for (let session = 0; session < sessions; session++) {
    const sides = {}
    try {
      for (const side of session % 2 === 0 ? ['off', 'on'] : ['on', 'off']) sides[side] = await startSide(KINDS[side])
      // unmeasured: warm both servers' JIT on the same work
      for (const phase of phases) for (const side of ['off', 'on']) await burst(sides[side], phase.room, phase.to, phase.k)
      for (const phase of phases) {
        for (let i = 0; i < Math.ceil(pairs / sessions); i++) {
          const order = i % 2 === 0 ? ['off', 'on'] : ['on', 'off']
          const pair = {}
          for (const side of order) pair[side] = await burst(sides[side], phase.room, phase.to, phase.k)
          const into = samples[phase.name]
          into.off.push(pair.off)
          into.on.push(pair.on)
          into.ratio.push(pair.on / pair.off)
        }
      }
    } finally {
      for (const side of Object.values(sides)) {
        await side.loadgen.stop()
        await side.server.stop()
      }
    }
    console.log(`session ${session + 1} of ${sessions} done`)
  }
  const sum = (values) => values.reduce((a, b) => a + b, 0)
  const results = {}
  for (const phase of phases) {
    const { off, on, ratio } = samples[phase.name]
    const r = results[phase.name] = {
      offMedian: median(off),
      onMedian: median(on),
      ratioMedian: median(ratio),
      ratioQ1: quantile(ratio, 0.25),
      ratioQ3: quantile(ratio, 0.75),
      ratioOfTotals: sum(on) / sum(off),
      samples: samples[phase.name]
    }
    console.log(`${phase.name}: server CPU µs/delivery off ${r.offMedian.toFixed(3)}, on ${r.onMedian.toFixed(3)}; on/off median of ${ratio.length} pairs ${r.ratioMedian.toFixed(3)} (quartiles ${r.ratioQ1.toFixed(3)}-${r.ratioQ3.toFixed(3)}), of the totals ${r.ratioOfTotals.toFixed(3)}`)
  }
  const report = {
    date: new Date().toISOString(),
    command: ['node bench/metrics-overhead.js', ...process.argv.slice(2)].join(' '),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, loadAverageAtEnd: os.loadavg() },
    config: { pairs, sessions, subscribers, k, big, bigK, off: KINDS.off, on: KINDS.on },
    seconds: (Date.now() - started) / 1000,
    results
  }
  await mkdir(`${HERE}results`, { recursive: true })
  const out = `${HERE}results/metrics-overhead-${report.date.replace(/[:.]/g, '-')}.json`
  await writeFile(out, JSON.stringify(report, null, 2) + '\n')
  console.log(`${report.seconds.toFixed(0)} s; JSON: bench/${out.slice(HERE.length)}`)
}

await main()
