// One instance of the reconnect-storm bench: fastify-realtime with @fastify/jwt,
// the Redis adapter and room history in Redis, in its own process.
//
//   node bench/storm-server.js --prefix <keyPrefix> [--spread ms] [--retry ms] [--url redis://...]
//
// IPC: `stats` (connections, and the time of every upgrade request and every
// accepted connection), `publish` ({ every } ms to room `storm`, 0 stops),
// `close` (app.close(): the drain; answers how long it took), `exit`.
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import realtime from 'fastify-realtime'
import { redisAdapter } from 'fastify-realtime/redis'
import { ready, serve } from './lib/ipc.js'
import { SECRET } from './lib/protocol.js'

const { values: flags } = parseArgs({
  options: {
    prefix: { type: 'string' },
    spread: { type: 'string', default: '0' },
    retry: { type: 'string', default: '1000' },
    url: { type: 'string' }
  }
})

const upgrades = []
const accepted = []
// Fastify bounds app.close() by pluginTimeout: room for the spread and the grace period
const app = Fastify({ logger: false, pluginTimeout: Number(flags.spread) + 30_000 })
await app.register(jwt, { secret: SECRET })
await app.register(realtime, {
  maxConnections: 100_000,
  heartbeat: false,
  rateLimit: { max: 1_000_000, windowMs: 1000 },
  closeGracePeriod: 5000,
  drain: { spread: Number(flags.spread), retry: Number(flags.retry) },
  history: { size: 10_000 },
  adapter: redisAdapter({ url: flags.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', keyPrefix: flags.prefix }),
  routes: [{ path: '/storm', onConnect: () => { accepted.push(Date.now()) } }]
})
app.server.on('upgrade', () => { upgrades.push(Date.now()) })
await app.listen({ port: 0, host: '127.0.0.1' })

let publisher
let sent = 0
serve({
  stats () {
    const { user, system } = process.cpuUsage()
    return { connections: app.realtime.connections().length, upgrades, accepted, sent, cpuMs: Math.round((user + system) / 1000) }
  },
  publish ({ every }) {
    clearInterval(publisher)
    if (every > 0) publisher = setInterval(() => { app.realtime.broadcast('storm', 'tick', { n: ++sent }) }, every)
    return sent
  },
  async close () {
    clearInterval(publisher)
    const started = Date.now()
    await app.close()
    return { tookMs: Date.now() - started }
  },
  exit () {
    setImmediate(() => process.exit(0))
    return true
  }
})

ready({ port: app.server.address().port })
