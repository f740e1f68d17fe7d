// Cross-instance delivery rate through Redis: instance A (this process)
// broadcasts to a room whose members are all on instance B (a child process);
// the rate is messages per second from A's first broadcast until B's clients
// have received every one. Nothing is delivered locally on A, so every message
// goes A -> Redis -> B -> WebSocket clients. Each round also has B broadcast
// the same messages itself (single instance, same clients), interleaved, and
// prints the ratio cross-instance / single-instance.
//
// Each round does this for two rooms, interleaved: `bench`, on the pub/sub
// path, and `kept`, a room with history (every broadcast is one Lua script:
// offset, stream entry, publish; every instance delivers from the channel), so
// the two paths are compared in the same run. For `kept`, "single instance"
// still goes through Redis: B sequences its own broadcasts there.
//
//   node bench/redis-throughput.js [--messages 50000] [--receivers 4] [--size 100] [--rounds 3] [--url redis://...] [--rooms bench,kept]
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
    prefix: { type: 'string' },
    rooms: { type: 'string', default: 'bench,kept' }
  }
})
const url = flags.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const keyPrefix = flags.prefix ?? `frt-bench-${process.pid}`
const ROOMS = flags.rooms.split(',')
/** the room with history */
const KEPT = 'kept'
const BATCH = 500 // broadcasts per event-loop turn, so A's socket to Redis drains as it goes

async function instance () {
  const app = Fastify({ logger: false })
  await app.register(realtime, {
    auth: { required: false },
    heartbeat: false,
    rateLimit: { max: 1_000_000, windowMs: 1000 },
    maxBufferedBytes: 256 * 1024 * 1024,
    routes: [{ path: '/ws', messages: {} }],
    history: { size: 10_000, rooms: (room) => room === KEPT },
    adapter: redisAdapter({ url, keyPrefix })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

/** Instance B and its clients: counts frames of the armed room per round and reports when every client has them all. */
async function receiver () {
  const app = await instance()
  const { port } = app.server.address()
  const receivers = Number(flags.receivers)
  const counts = new Array(receivers).fill(0)
  let armed = ''
  let expected = Infinity
  let finished = 0
  const unkept = new Set()
  const clients = []
  for (let i = 0; i < receivers; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    await once(ws, 'open')
    for (const room of ROOMS) {
      ws.send(JSON.stringify({ type: 'join', room, id: room }))
      await once(ws, 'message') // the ack: B has subscribed (and read the room's history)
    }
    ws.on('message', (raw) => {
      // the room name is near the start of every frame: `{"type":"tick","room":"..."`
      const text = raw.toString('latin1', 0, 40)
      if (!text.includes(`"room":"${armed}"`)) return
      // a message of the room with history that has no offset was not kept: the run is not what it claims
      if (armed === KEPT && counts[i] === 0 && !raw.toString().includes('"offset":')) unkept.add(i)
      if (++counts[i] === expected && ++finished === receivers) process.send({ done: true, at: Date.now(), unkept: unkept.size })
    })
    clients.push(ws)
  }
  process.on('message', async (msg) => {
    if (msg.arm !== undefined) {
      counts.fill(0)
      finished = 0
      unkept.clear()
      armed = msg.room
      expected = msg.arm
      process.send({ armed: true })
    } else if (msg.local !== undefined) {
      // the single-instance baseline: the same broadcasts, made on B itself
      const data = { text: 'x'.repeat(Number(flags.size)) }
      for (let sent = 0; sent < msg.local;) {
        const end = Math.min(msg.local, sent + BATCH)
        for (; sent < end; sent++) app.realtime.broadcast(msg.room, 'tick', data)
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

const median = (values) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]

async function publisher () {
  const messages = Number(flags.messages)
  const receivers = Number(flags.receivers)
  const data = { text: 'x'.repeat(Number(flags.size)) }
  const app = await instance()
  const child = fork(fileURLToPath(import.meta.url), [
    '--role', 'receiver', '--receivers', String(receivers), '--url', url, '--prefix', keyPrefix, '--rooms', flags.rooms
  ])
  await nextMessage(child, 'ready')
  const payloadBytes = Buffer.byteLength(JSON.stringify({ type: 'tick', room: ROOMS[0], data }))
  console.log(`fastify-realtime over Redis (${url}): A broadcasts ${messages} messages of about ${payloadBytes} B to a room; ${receivers} clients on instance B (another process); rooms: ${ROOMS.map((r) => r === KEPT ? `${r} (history)` : `${r} (pub/sub)`).join(', ')}`)

  /** One timed run: arm B for `room`, start the broadcasts with `start`, wait until every client has every message. */
  async function timed (round, room, start) {
    child.send({ arm: messages, room })
    await nextMessage(child, 'armed')
    const done = nextMessage(child, 'done')
    const started = Date.now()
    await start()
    let timer
    const { at, unkept } = await Promise.race([done, new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`round ${round}: not every message of ${room} arrived within 60 s`)), 60_000)
    })]).finally(() => clearTimeout(timer))
    if (unkept > 0) console.log(`  warning: ${room}: messages arrived without an offset (the history store was unreachable)`)
    return messages / ((at - started) / 1000)
  }

  const results = Object.fromEntries(ROOMS.map((room) => [room, { cross: [], local: [] }]))
  for (let round = 1; round <= Number(flags.rounds); round++) {
    // alternate which room goes first, so neither always runs on a warmer process
    const order = round % 2 === 1 ? ROOMS : [...ROOMS].reverse()
    const line = []
    for (const room of order) {
      const cross = await timed(round, room, async () => {
        for (let sent = 0; sent < messages;) {
          const end = Math.min(messages, sent + BATCH)
          for (; sent < end; sent++) app.realtime.broadcast(room, 'tick', data)
          await new Promise((resolve) => setImmediate(resolve))
        }
      })
      const local = await timed(round, room, async () => { child.send({ local: messages, room }) })
      results[room].cross.push(cross)
      results[room].local.push(local)
      line.push(`${room}: cross-instance ${Math.round(cross)} msg/s (${Math.round(cross * receivers)} deliveries/s), single instance ${Math.round(local)} msg/s, ratio ${(cross / local).toFixed(2)}x`)
    }
    console.log(`round ${round}: ${line.join('; ')}`)
  }
  console.log('\nmedians:')
  for (const room of ROOMS) {
    const { cross, local } = results[room]
    const ratios = cross.map((c, i) => c / local[i])
    console.log(`  ${room}${room === KEPT ? ' (history)' : ' (pub/sub)'}: ${Math.round(median(cross))} msg/s cross-instance, ${Math.round(median(local))} msg/s single instance; cross / single ${median(ratios).toFixed(2)}x`)
  }
  if (ROOMS.includes(KEPT) && ROOMS.length > 1) {
    const plain = ROOMS.find((r) => r !== KEPT)
    const per = results[KEPT].cross.map((c, i) => c / results[plain].cross[i])
    console.log(`  history / pub/sub, cross-instance, same rounds: ${median(per).toFixed(2)}x`)
  }
  child.send({ exit: true })
  await once(child, 'exit')
  await app.close()
  // the history streams this run wrote
  const { Redis } = await import('ioredis')
  const redis = new Redis(url)
  const keys = await redis.keys(`${keyPrefix}:*`)
  if (keys.length > 0) await redis.del(...keys)
  redis.disconnect()
}

if (flags.role === 'receiver') await receiver()
else await publisher()
