// Cross-instance delivery rate through Redis: instance A (this process)
// broadcasts to a room whose members are all on instance B (a child process);
// the rate is messages per second from A's first broadcast until B's clients
// have received every one. Nothing is delivered locally on A, so every message
// goes A -> Redis -> B -> WebSocket clients. Each round also has B broadcast
// the same messages itself (single instance, same clients), interleaved, and
// prints the ratio cross-instance / single-instance.
//
//   node bench/redis-throughput.js [--messages 50000] [--receivers 4] [--size 100] [--rounds 3] [--url redis://...]
//
// Run `npm run build` first: the plugin is imported by its package name, which
// resolves to dist/. Redis from --url, else REDIS_URL, else 127.0.0.1:6379.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import WebSocket from 'ws'
import realtime from 'fastify-realtime'
import { redisAdapter } from 'fastify-realtime/redis'

const { values: flags } = parseArgs({
  options: {
    role: { type: 'string', default: 'publisher' },
    messages: { type: 'string', default: '50000' },
    receivers: { type: 'string', default: '4' },
    size: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    url: { type: 'string' },
    prefix: { type: 'string' }
  }
})
const url = flags.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const keyPrefix = flags.prefix ?? `frt-bench-${process.pid}`
const ROOM = 'bench'
const BATCH = 500 // broadcasts per event-loop turn, so A's socket to Redis drains as it goes

async function instance () {
  const app = Fastify({ logger: false })
  await app.register(realtime, {
    auth: { required: false },
    heartbeat: false,
    rateLimit: { max: 1_000_000, windowMs: 1000 },
    maxBufferedBytes: 256 * 1024 * 1024,
    routes: [{ path: '/ws', messages: {} }],
    adapter: redisAdapter({ url, keyPrefix })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

/** Instance B and its clients: counts frames per round and reports when every client has them all. */
async function receiver () {
  const app = await instance()
  const { port } = app.server.address()
  const receivers = Number(flags.receivers)
  const counts = new Array(receivers).fill(0)
  let expected = Infinity
  let finished = 0
  let firstChecked = false
  const clients = []
  for (let i = 0; i < receivers; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    await once(ws, 'open')
    ws.send(JSON.stringify({ type: 'join', room: ROOM, id: 1 }))
    await once(ws, 'message') // the ack: B has subscribed
    ws.on('message', (raw) => {
      if (!firstChecked) {
        firstChecked = true
        const msg = JSON.parse(raw.toString())
        if (msg.type !== 'tick' || msg.room !== ROOM) throw new Error(`unexpected ${raw}`)
      }
      if (++counts[i] === expected && ++finished === receivers) process.send({ done: true, at: Date.now() })
    })
    clients.push(ws)
  }
  process.on('message', async (msg) => {
    if (msg.arm !== undefined) {
      counts.fill(0)
      finished = 0
      expected = msg.arm
      process.send({ armed: true })
    } else if (msg.local !== undefined) {
      // the single-instance baseline: the same broadcasts, made on B itself
      const data = { text: 'x'.repeat(Number(flags.size)) }
      for (let sent = 0; sent < msg.local;) {
        const end = Math.min(msg.local, sent + BATCH)
        for (; sent < end; sent++) app.realtime.broadcast(ROOM, 'tick', data)
        await new Promise((resolve) => setImmediate(resolve))
      }
    } else if (msg.exit) {
      for (const ws of clients) ws.close()
      await app.close()
      process.exit(0)
    }
  })
  process.send({ ready: true })
}

function nextMessage (child, key) {
  return new Promise((resolve) => {
    const onMessage = (msg) => {
      if (msg[key] === undefined) return
      child.off('message', onMessage)
      resolve(msg)
    }
    child.on('message', onMessage)
  })
}

async function publisher () {
  const messages = Number(flags.messages)
  const receivers = Number(flags.receivers)
  const data = { text: 'x'.repeat(Number(flags.size)) }
  const app = await instance()
  const child = fork(fileURLToPath(import.meta.url), [
    '--role', 'receiver', '--receivers', String(receivers), '--url', url, '--prefix', keyPrefix
  ])
  await nextMessage(child, 'ready')
  const payloadBytes = Buffer.byteLength(JSON.stringify({ type: 'tick', room: ROOM, data }))
  console.log(`fastify-realtime over Redis (${url}): A broadcasts ${messages} messages of ${payloadBytes} B to room "${ROOM}"; ${receivers} clients on instance B (another process)`)

  /** One timed run: arm B, start the broadcasts with `start`, wait until every client has every message. */
  async function timed (round, start) {
    child.send({ arm: messages })
    await nextMessage(child, 'armed')
    const done = nextMessage(child, 'done')
    const started = Date.now()
    await start()
    let timer
    const { at } = await Promise.race([done, new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`round ${round}: not every message arrived within 60 s`)), 60_000)
    })]).finally(() => clearTimeout(timer))
    return messages / ((at - started) / 1000)
  }

  const rates = []
  const ratios = []
  for (let round = 1; round <= Number(flags.rounds); round++) {
    const cross = await timed(round, async () => {
      for (let sent = 0; sent < messages;) {
        const end = Math.min(messages, sent + BATCH)
        for (; sent < end; sent++) app.realtime.broadcast(ROOM, 'tick', data)
        await new Promise((resolve) => setImmediate(resolve))
      }
    })
    const local = await timed(round, async () => { child.send({ local: messages }) })
    rates.push(cross)
    ratios.push(cross / local)
    console.log(`round ${round}: cross-instance ${Math.round(cross)} msg/s through Redis (${Math.round(cross * receivers)} deliveries/s to clients); single instance ${Math.round(local)} msg/s; ratio ${(cross / local).toFixed(2)}x; dropped on A: ${app.realtime.adapter.dropped}`)
  }
  const median = (values) => values.sort((x, y) => x - y)[Math.floor(values.length / 2)]
  console.log(`median: ${Math.round(median(rates))} msg/s cross-instance; cross-instance / single-instance: ${median(ratios).toFixed(2)}x`)
  child.send({ exit: true })
  await once(child, 'exit')
  await app.close()
}

if (flags.role === 'receiver') await receiver()
else await publisher()
