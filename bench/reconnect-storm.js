// A reconnect storm: N clients (the plugin's own client) of instance A, in a
// room with history in Redis, while instance B broadcasts to that room. A
// shuts down (app.close()); its clients reconnect to B (a client-side balancer
// sends new connections to B once A is out of rotation) and resume with
// `since`. Measured at B: peak upgrades per second, and the time from the start
// of A's shutdown until every client is back and resumed. Scenarios run
// interleaved: drain.spread 0 (1001 to all at once; clients use their backoff)
// against drain.spread > 0 (1012 over the spread; clients wait the hint).
//
//   node bench/reconnect-storm.js [--clients 5000] [--spread 10000] [--retry 1000] [--rounds 2] [--publish 500] [--only <spread>] [--url redis://...]
//
// Per round each scenario gets fresh processes: A, B (the instances) and a
// load generator running the N clients. `--only 0` runs one scenario.
//
// Run `npm run build` first. Needs Redis, and `ulimit -n` above 3 x clients.
import { spawnSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { spawnChild } from './lib/ipc.js'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const SERVER = fileURLToPath(new URL('storm-server.js', import.meta.url))
const LOADGEN = fileURLToPath(new URL('storm-loadgen.js', import.meta.url))

const { values: flags } = parseArgs({
  options: {
    clients: { type: 'string', default: '5000' },
    spread: { type: 'string', default: '10000' },
    retry: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '2' },
    publish: { type: 'string', default: '500' },
    only: { type: 'string' },
    url: { type: 'string' }
  }
})
const count = Number(flags.clients)
const url = flags.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

function fileLimit () {
  const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' })
  const value = Number(out.stdout?.trim())
  return Number.isFinite(value) ? value : Infinity
}

/** Most events in any `windowMs` window, scaled to a per-second rate. */
function peakRate (times, windowMs) {
  const sorted = [...times].sort((a, b) => a - b)
  let best = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i] - sorted[j] >= windowMs) j++
    best = Math.max(best, i - j + 1)
  }
  return best * (1000 / windowMs)
}

async function scenario (name, spread, round) {
  const prefix = `frt-storm-${process.pid}-${round}-${spread}`
  const args = ['--prefix', prefix, '--url', url, '--retry', flags.retry]
  const a = spawnChild(SERVER, { args: [...args, '--spread', String(spread)] })
  const b = spawnChild(SERVER, { args: [...args, '--spread', '0'] })
  const loadgen = spawnChild(LOADGEN)
  try {
    const [{ port: portA }, { port: portB }] = await Promise.all([a.ready, b.ready, loadgen.ready])
    const connected = await loadgen.call('connect', { count, url: `ws://127.0.0.1:${portA}/storm`, concurrency: 200 }, 300_000)
    await b.call('publish', { every: Number(flags.publish) })
    await new Promise((resolve) => setTimeout(resolve, 1000))
    // A leaves the rotation, then shuts down
    await loadgen.call('switch', { url: `ws://127.0.0.1:${portB}/storm` })
    const cpuB0 = (await b.call('stats')).cpuMs
    const watching = loadgen.call('watch', { timeoutMs: 120_000 }, 130_000)
    watching.catch(() => {}) // awaited below; a failure of A's close must not make it an unhandled rejection first
    const t0 = Date.now()
    const closed = await a.call('close', {}, 130_000)
    const watched = await watching
    const stats = await b.call('stats')
    await b.call('publish', { every: 0 })
    const upgrades = stats.upgrades.filter((t) => t >= t0)
    const result = {
      scenario: name,
      spread,
      clients: watched.clients,
      connectMs: connected.tookMs,
      closeMs: closed.tookMs,
      upgradesAtB: upgrades.length,
      peakUpgradesPerSecond1s: peakRate(upgrades, 1000),
      peakUpgradesPerSecond100ms: peakRate(upgrades, 100),
      allBackAndResumedMs: watched.lastResumedAt - t0,
      lastCloseMs: watched.lastCloseAt - t0,
      awayMs: watched.awayMs,
      closeToOpenMs: watched.closeToOpenMs,
      closesSeen: watched.attempts,
      resumed: watched.resumed,
      recovered: watched.recovered,
      gaps: watched.gaps,
      gapSamples: watched.gapSamples,
      notRecovered: watched.notRecovered,
      resyncs: watched.resyncs,
      closeCodes: watched.closeCodes,
      cpuMs: { loadgen: watched.cpuMs, b: stats.cpuMs - cpuB0 },
      connectionsAtB: stats.connections
    }
    console.log(`round ${round} ${name.padEnd(10)} ${result.clients} clients: peak ${Math.round(result.peakUpgradesPerSecond1s)} upgrades/s at B (1 s window; ${Math.round(result.peakUpgradesPerSecond100ms)}/s over 100 ms), ` +
      `all back and resumed after ${(result.allBackAndResumedMs / 1000).toFixed(1)} s (A closed in ${(result.closeMs / 1000).toFixed(1)} s), ` +
      `each client away p50 ${result.awayMs.p50} ms, p99 ${result.awayMs.p99} ms, max ${result.awayMs.max} ms (close to open p50 ${result.closeToOpenMs.p50} ms, p99 ${result.closeToOpenMs.p99} ms), ${result.closesSeen} closes seen, ` +
      `${result.recovered}/${result.clients} recovered, ${result.gaps} gaps, ${result.resyncs} resyncs, ${result.upgradesAtB} upgrades at B, CPU ms loadgen ${result.cpuMs.loadgen} / B ${result.cpuMs.b}, closes: ${result.closeCodes.join(' / ')}`)
    return result
  } finally {
    await loadgen.call('close').catch(() => {})
    await loadgen.stop()
    await b.call('close', {}, 30_000).catch(() => {})
    await b.stop()
    await a.stop()
    const { Redis } = await import('ioredis')
    const redis = new Redis(url)
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  }
}

const median = (values) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]

async function main () {
  if (fileLimit() < count * 3 + 500) console.warn(`warning: ulimit -n is ${fileLimit()}; this needs about ${count * 3 + 500}`)
  console.log(`machine: ${os.cpus().length} cores, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  console.log(`${count} clients of instance A reconnect to instance B; history in Redis; B broadcasts every ${flags.publish} ms; drain.retry ${flags.retry} ms\n`)
  const spread = Number(flags.spread)
  const results = []
  for (let round = 1; round <= Number(flags.rounds); round++) {
    let order = round % 2 === 1 ? [['spread 0', 0], [`spread ${spread}`, spread]] : [[`spread ${spread}`, spread], ['spread 0', 0]]
    if (flags.only !== undefined) order = order.filter(([, s]) => String(s) === flags.only)
    for (const [name, s] of order) results.push(await scenario(name, s, round))
  }
  console.log('\nmedians:')
  console.log('| drain | clients | peak upgrades/s at B (1 s) | peak upgrades/s at B (100 ms) | all back and resumed | recovered | gaps | resyncs |')
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|')
  for (const name of [...new Set(results.map((r) => r.scenario))]) {
    const rs = results.filter((r) => r.scenario === name)
    console.log(`| ${name} | ${rs[0].clients} | ${Math.round(median(rs.map((r) => r.peakUpgradesPerSecond1s)))} | ${Math.round(median(rs.map((r) => r.peakUpgradesPerSecond100ms)))} | ` +
      `${(median(rs.map((r) => r.allBackAndResumedMs)) / 1000).toFixed(1)} s | ${median(rs.map((r) => r.recovered))} | ${median(rs.map((r) => r.gaps))} | ${median(rs.map((r) => r.resyncs))} |`)
  }
  await mkdir(`${HERE}results`, { recursive: true })
  const file = `${HERE}results/storm-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
  await writeFile(file, JSON.stringify({ command: ['node bench/reconnect-storm.js', ...process.argv.slice(2)].join(' '), load: os.loadavg(), results }, null, 2) + '\n')
  console.log(`\nJSON: bench/results/${file.slice(HERE.length + 'results/'.length)}`)
}

await main()
