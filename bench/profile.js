// Where a server's fan-out time goes: runs one server under `node --cpu-prof`
// through a fan-out-only workload, then summarises the V8 profile.
//
//   node bench/profile.js [--server realtime] [--subscribers 1000] [--bursts 10] [--k 100]
//   node bench/profile.js --phase connect [--server realtime] [--subscribers 3000]
//
// `--phase connect` profiles the handshakes instead: only the window in which
// the clients connect counts.
//
// The .cpuprofile is written under bench/results/profile/ (open it in Chrome
// DevTools > Performance, or any speedscope-like viewer).
import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { spawnChild } from './lib/ipc.js'
import { summarize } from './lib/profile-summary.js'
import { SERVERS } from './servers/index.js'

const { values: flags } = parseArgs({
  options: {
    server: { type: 'string', default: 'realtime' },
    subscribers: { type: 'string', default: '1000' },
    bursts: { type: 'string', default: '10' },
    k: { type: 'string', default: '100' },
    interval: { type: 'string', default: '100' },
    phase: { type: 'string', default: 'fanout' }
  }
})
const kind = flags.server
if (SERVERS[kind] === undefined) throw new Error(`unknown server ${kind}; one of ${Object.keys(SERVERS).join(', ')}`)
const subscribers = Number(flags.subscribers)
const bursts = Number(flags.bursts)
const k = Number(flags.k)
const phase = flags.phase
if (phase !== 'fanout' && phase !== 'connect') throw new Error('--phase is fanout or connect')

const dir = fileURLToPath(new URL(`results/profile/${kind}/`, import.meta.url))
await rm(dir, { recursive: true, force: true })
await mkdir(dir, { recursive: true })

const server = spawnChild(fileURLToPath(new URL('server-host.js', import.meta.url)), {
  args: [kind],
  execArgv: ['--expose-gc', '--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${flags.interval}`]
})
const loadgen = spawnChild(fileURLToPath(new URL('loadgen.js', import.meta.url)))
let operations = 0
let cpuMicros = 0
let window = {}
try {
  const { port, path } = await server.ready
  await loadgen.ready
  let cpu0 = await server.call('cpu')
  const connected = await loadgen.call('connect', { port, path, client: SERVERS[kind].client, count: subscribers + 1, concurrency: 256 }, 120_000)
  console.log(`connect: ${Math.round(connected.perSecond).toLocaleString('en-US')} upgrades/s`)
  if (phase === 'connect') {
    operations = subscribers + 1
  } else {
    await loadgen.call('join', { plans: [{ room: 'small', from: 0, to: subscribers + 1 }], concurrency: 500 }, 120_000)
    await loadgen.call('burst', { room: 'small', to: subscribers + 1, k: 20, stallMs: 5000 })
    cpu0 = await server.call('cpu')
    for (let i = 0; i < bursts; i++) {
      const run = await loadgen.call('burst', { room: 'small', to: subscribers + 1, k, stallMs: 5000 }, 120_000)
      operations += run.delivered
      console.log(`burst ${i + 1}: ${Math.round(run.perSecond).toLocaleString('en-US')} deliveries/s`)
    }
  }
  const cpu1 = await server.call('cpu')
  cpuMicros = cpu1.user - cpu0.user + cpu1.system - cpu0.system
  window = { from: cpu0.clock, to: cpu1.clock }
} finally {
  await loadgen.stop()
  await server.stop(10_000)
}

const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'))
if (file === undefined) throw new Error(`no profile written in ${dir}`)
const unit = phase === 'connect' ? 'upgrade' : 'delivery'
console.log(`\n${SERVERS[kind].label}: ${operations.toLocaleString('en-US')} ${unit === 'upgrade' ? 'upgrades' : 'deliveries'}, server CPU ${(cpuMicros / operations).toFixed(3)} µs/${unit} (user+system, measured window)`)
console.log(`profile: bench/results/profile/${kind}/${file}\n`)
console.log(phase === 'connect' ? 'Only the connect window counts below.' : 'Only the measured bursts count below (connects, joins and warm-up left out).')
const roots = phase === 'connect'
  ? ['emit', 'handleUpgrade', 'realtimeHandshake', 'verifyToken', 'jwtVerify', 'onUpgraded', 'completeUpgrade', 'routeHandler', 'runPreParsing', 'hookRunner', 'Connection']
  : undefined
console.log(summarize(JSON.parse(await readFile(dir + file, 'utf8')), { ...window, roots }))
