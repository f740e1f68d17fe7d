// Soak test (npm run soak): thousands of connections join, chat, leave and
// reconnect in churn against the built package; afterwards connections, rooms,
// timers, sockets and heap must be back at their baseline. Bounded in time;
// prints a summary and exits non-zero on a leak or a lost message.
//
// Tunables: SOAK_CONNECTIONS (sessions, default 6000), SOAK_CONCURRENCY
// (simultaneous clients, default 200), SOAK_SECONDS (hard limit, default 240).
// SOAK_HEAP_SNAPSHOTS=<dir> writes a heap snapshot after each step, to diff when the heap check fails.
// SOAK_INJECT_LEAK=1 makes the app itself leak (a timer and a reference per
// connection) to show that the leak check catches it: the verdict must fail.

// Count every live timer, unref()'d ones included (node's getActiveResourcesInfo
// lists only ref'd ones): patched before the plugin and its dependencies load.
const liveTimers = new Set()
const native = { setTimeout, clearTimeout, setInterval, clearInterval }
globalThis.setTimeout = function trackedTimeout (fn, ms, ...args) {
  const timer = native.setTimeout(function fire (...a) {
    liveTimers.delete(timer)
    return fn.apply(this, a)
  }, ms, ...args)
  liveTimers.add(timer)
  return timer
}
globalThis.clearTimeout = function trackedClearTimeout (timer) {
  liveTimers.delete(timer)
  return native.clearTimeout(timer)
}
globalThis.setInterval = function trackedInterval (fn, ms, ...args) {
  const timer = native.setInterval(fn, ms, ...args)
  liveTimers.add(timer)
  return timer
}
globalThis.clearInterval = function trackedClearInterval (timer) {
  liveTimers.delete(timer)
  return native.clearInterval(timer)
}

const { default: Fastify } = await import('fastify')
const { default: jwt } = await import('@fastify/jwt')
const { Type } = await import('@sinclair/typebox')
const { default: WebSocket } = await import('ws')
const { default: realtime } = await import('fastify-realtime')

const TARGET = Number(process.env.SOAK_CONNECTIONS ?? 6000)
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 200)
const SECONDS = Number(process.env.SOAK_SECONDS ?? 240)
const WARMUP = 400
const ROOMS = 40
const USERS = 600
const HEAP_SLACK = 8 * 1024 * 1024
const SECRET = 'soak-secret-that-is-long-enough-for-hs256'

if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc (npm run soak does)')
  process.exit(2)
}

const MiB = (n) => (n / 1048576).toFixed(1) + ' MiB'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const pick = (n) => Math.floor(Math.random() * n)

function fullGc () {
  for (let i = 0; i < 3; i++) globalThis.gc()
}

async function settledHeap () {
  await sleep(100)
  fullGc()
  await sleep(50)
  fullGc()
  return process.memoryUsage().heapUsed
}

/**
 * Node's timer lists alive on the heap. node keeps one per distinct duration, and
 * keeps an emptied one until that duration has elapsed (clearTimeout does not
 * free it): per-connection timers of unique durations pile up here.
 */
async function timerLists () {
  const { getHeapSnapshot } = await import('node:v8')
  const chunks = []
  for await (const chunk of getHeapSnapshot()) chunks.push(chunk)
  const snapshot = JSON.parse(Buffer.concat(chunks).toString())
  const fields = snapshot.snapshot.meta.node_fields
  const name = fields.indexOf('name')
  const type = fields.indexOf('type')
  const objectType = snapshot.snapshot.meta.node_types[0].indexOf('object')
  let count = 0
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    if (snapshot.nodes[i + type] === objectType && snapshot.strings[snapshot.nodes[i + name]] === 'TimersList') count++
  }
  return count
}

/** Counts of active libuv resources by kind (Timeout, TCPSocketWrap, ...). */
function resources () {
  const out = {}
  for (const name of process.getActiveResourcesInfo()) out[name] = (out[name] ?? 0) + 1
  return out
}

const app = Fastify({ logger: false })
await app.register(jwt, { secret: SECRET })
const leaked = []
await app.register(realtime, {
  maxConnections: CONCURRENCY * 3,
  heartbeat: { interval: 1000 },
  rateLimit: { max: 200, windowMs: 1000 },
  routes: [{
    path: '/chat',
    presence: true,
    onConnect: process.env.SOAK_INJECT_LEAK === '1'
      ? (conn) => { leaked.push(conn, setInterval(() => {}, 60_000).unref()) }
      : undefined,
    messages: {
      'chat.send': {
        schema: Type.Object({ text: Type.String({ minLength: 1, maxLength: 200 }) }),
        handler (conn, data, msg) {
          conn.broadcast(msg.room, 'chat.message', { from: conn.user.sub, text: data.text })
          return { ok: true }
        }
      }
    }
  }]
})
const address = await app.listen({ port: 0, host: '127.0.0.1' })
const url = address.replace('http://', 'ws://') + '/chat'

// tokens: half carry an exp an hour away, so every connection also arms (and must clear) an expiry timer
const tokens = Array.from({ length: USERS }, (_, i) => app.jwt.sign({ sub: `user${i}` }, i % 2 === 0 ? { expiresIn: '1h' } : {}))

const counts = { sessions: 0, connected: 0, refused: 0, sent: 0, acked: 0, errorsExpected: 0, errorsUnexpected: 0, broadcasts: 0, presence: 0, timeouts: 0, graceful: 0, abrupt: 0, reconnects: 0 }
let peak = 0
let open = 0

/** One client: connects, and answers request() by id. */
async function connect (user) {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${tokens[user]}` } })
  const pending = new Map()
  let nextId = 0
  ws.on('message', (raw) => {
    const m = JSON.parse(raw.toString())
    if (m.type === 'chat.message') counts.broadcasts++
    else if (m.type === 'presence') counts.presence++
    if (m.id !== undefined && pending.has(m.id)) {
      const { resolve, timer } = pending.get(m.id)
      clearTimeout(timer)
      pending.delete(m.id)
      resolve(m)
    }
  })
  ws.on('error', () => {})
  ws.on('close', () => {
    for (const { resolve, timer } of pending.values()) {
      clearTimeout(timer)
      resolve({ type: 'closed' })
    }
    pending.clear()
  })
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    ws.once('error', reject)
  })
  const request = (msg) => new Promise((resolve) => {
    const id = ++nextId
    const timer = setTimeout(() => {
      pending.delete(id)
      counts.timeouts++
      resolve({ type: 'timeout' })
    }, 10_000)
    pending.set(id, { resolve, timer })
    ws.send(JSON.stringify({ ...msg, id }))
  })
  return { ws, request }
}

/** One session: join 1-3 rooms, chat, maybe misbehave, maybe leave a room, then go in one of three ways. */
async function session (user) {
  counts.sessions++
  let client
  try {
    client = await connect(user)
  } catch {
    counts.refused++
    return
  }
  counts.connected++
  peak = Math.max(peak, ++open)
  const { ws, request } = client
  try {
    const rooms = new Set(Array.from({ length: 1 + pick(3) }, () => `room${pick(ROOMS)}`))
    for (const room of rooms) {
      const ack = await request({ type: 'join', room })
      if (ack.type !== 'ack') counts.errorsUnexpected++
    }
    const chats = 2 + pick(4)
    for (let i = 0; i < chats; i++) {
      const room = [...rooms][pick(rooms.size)]
      counts.sent++
      const ack = await request({ type: 'chat.send', room, data: { text: `hello ${i} from ${user}` } })
      if (ack.type === 'ack') counts.acked++
      else counts.errorsUnexpected++
    }
    if (Math.random() < 0.2) {
      // misbehave a little: these must be answered with errors, nothing more
      const bad = await request({ type: 'chat.send', room: 'not-joined', data: { text: 'x' } })
      if (bad.code === 'NOT_IN_ROOM') counts.errorsExpected++
      else counts.errorsUnexpected++
    }
    if (rooms.size > 1 && Math.random() < 0.5) {
      const ack = await request({ type: 'leave', room: [...rooms][0] })
      if (ack.type !== 'ack') counts.errorsUnexpected++
    }
    // stay a while, listening; a few stay through several heartbeats
    await sleep(Math.random() < 0.03 ? 1500 + pick(1500) : pick(250))
  } finally {
    const how = Math.random()
    if (how < 0.6) {
      counts.graceful++
      ws.close(1000)
    } else if (how < 0.85) {
      counts.abrupt++
      ws.terminate()
    } else {
      // reconnect at once as the same user, before the old socket has finished closing
      counts.reconnects++
      ws.close(1000)
    }
    await new Promise((resolve) => ws.readyState === WebSocket.CLOSED ? resolve() : ws.once('close', resolve))
    open--
    if (how >= 0.85) await session(user)
  }
}

async function churn (total, deadline) {
  let started = 0
  const worker = async () => {
    while (started < total && Date.now() < deadline) {
      started++
      await session(pick(USERS))
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

async function quiesce () {
  const until = Date.now() + 15_000
  while ((app.realtime.stats().connections > 0 || app.realtime.rooms().length > 0) && Date.now() < until) await sleep(20)
}

// the server side keeps broadcasting from "HTTP routes" the whole time
let peakTimers = 0
const news = setInterval(() => {
  app.realtime.broadcast(`room${pick(ROOMS)}`, 'news', { at: Date.now() })
  peakTimers = Math.max(peakTimers, liveTimers.size)
}, 50)

const started = Date.now()
const deadline = started + SECONDS * 1000
await churn(WARMUP, deadline)
await quiesce()
const baseline = { heap: await settledHeap(), resources: resources(), timers: liveTimers.size, timerLists: await timerLists(), stats: app.realtime.stats(), rooms: app.realtime.rooms().length }
for (const key of Object.keys(counts)) counts[key] = 0
peak = 0

const trend = []
const step = Math.max(1000, Math.floor(TARGET / 5))
for (let done = 0; done < TARGET && Date.now() < deadline; done += step) {
  await churn(Math.min(step, TARGET - done), deadline)
  await quiesce()
  trend.push(await settledHeap())
  if (process.env.SOAK_HEAP_SNAPSHOTS !== undefined) {
    const { writeHeapSnapshot } = await import('node:v8')
    console.log(`  heap snapshot       ${writeHeapSnapshot(`${process.env.SOAK_HEAP_SNAPSHOTS}/soak-${trend.length}.heapsnapshot`)}`)
  }
}
clearInterval(news)
await quiesce()
const after = { heap: await settledHeap(), resources: resources(), timers: liveTimers.size, timerLists: await timerLists(), stats: app.realtime.stats(), rooms: app.realtime.rooms().length }
const elapsed = (Date.now() - started) / 1000

// the news interval, live at the baseline, is cleared by now
const timerGrowth = after.timers - (baseline.timers - 1)
const socketGrowth = (after.resources.TCPSocketWrap ?? 0) - (baseline.resources.TCPSocketWrap ?? 0)
const checks = [
  ['connections back to 0', after.stats.connections === 0, `${baseline.stats.connections} -> ${after.stats.connections}`],
  ['rooms back to 0', after.rooms === 0, `${baseline.rooms} -> ${after.rooms}`],
  ['connection slots back to 0', app.realtime.limits.active === 0, `${app.realtime.limits.active}`],
  ['timers back to baseline', timerGrowth <= 0, `${baseline.timers} -> ${after.timers} live timers, unref()'d included (peak ${peakTimers} during churn)`],
  ['timer lists back to baseline', after.timerLists - baseline.timerLists <= 64, `${baseline.timerLists} -> ${after.timerLists} node TimersList objects (one per distinct timer duration, kept until it elapses)`],
  ['sockets back to baseline', socketGrowth <= 0, `TCPSocketWrap ${baseline.resources.TCPSocketWrap ?? 0} -> ${after.resources.TCPSocketWrap ?? 0}`],
  ['heap back to baseline', after.heap - baseline.heap < HEAP_SLACK, `${MiB(baseline.heap)} -> ${MiB(after.heap)} (${after.heap >= baseline.heap ? '+' : ''}${MiB(after.heap - baseline.heap)}, slack ${MiB(HEAP_SLACK)})`],
  ['every chat message acked', counts.acked === counts.sent && counts.timeouts === 0, `${counts.acked}/${counts.sent}, ${counts.timeouts} timeouts`],
  ['no unexpected error', counts.errorsUnexpected === 0 && counts.refused === 0, `${counts.errorsUnexpected} unexpected, ${counts.refused} refused`]
]

console.log('fastify-realtime soak')
console.log(`  duration            ${elapsed.toFixed(1)} s (limit ${SECONDS} s), node ${process.version}`)
console.log(`  connections churned ${counts.connected} (target ${TARGET}, ${CONCURRENCY} at a time, peak ${peak} open)`)
console.log(`  endings             ${counts.graceful} graceful close, ${counts.abrupt} abrupt terminate, ${counts.reconnects} immediate reconnects`)
console.log(`  messages            ${counts.sent} chat sent, ${counts.acked} acked, ${counts.broadcasts} broadcasts and ${counts.presence} presence events received, ${counts.errorsExpected} deliberate errors answered`)
const delta = Object.fromEntries(['messagesIn', 'messagesOut', 'drops', 'errors'].map((k) => [k, after.stats[k] - baseline.stats[k]]))
console.log(`  server stats        ${JSON.stringify(delta)} (drops: frames for sockets already closing)`)
console.log(`  heap after each step ${trend.map(MiB).join(', ')}`)
for (const [name, ok, detail] of checks) console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${name.padEnd(28)} ${detail}`)
const leak = checks.some(([, ok]) => !ok)
console.log(`  verdict             ${leak ? 'LEAK OR LOSS DETECTED' : 'no leak: rooms, timers, sockets and heap returned to baseline'}`)

await app.close()
process.exitCode = leak ? 1 : 0
// the process must end by itself; if a handle is left behind, say which
setTimeout(() => {
  console.error('soak: process did not exit; active resources:', process.getActiveResourcesInfo())
  process.exit(3)
}, 10_000).unref()
