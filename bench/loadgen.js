// The load generator: one process holding every client of a round, driven
// step by step by the orchestrator over IPC. Client 0 publishes; the others
// record the latency of each delivery from the timestamp in its payload.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { EnvelopeClient, SocketIoClient } from './lib/clients.js'
import { ready, serve } from './lib/ipc.js'
import { messageData, signToken } from './lib/protocol.js'
import { percentile } from './lib/stats.js'

let clients = []

function nowMicros () {
  return Math.round(performance.now() * 1000)
}

function noop () {}

/** Run `task(i)` for i in [0, count) with at most `concurrency` in flight. */
async function pool (count, concurrency, task) {
  let next = 0
  async function worker () {
    while (next < count) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

/** This process's CPU time in µs. */
function cpuMicros () {
  const { user, system } = process.cpuUsage()
  return user + system
}

/**
 * Records deliveries until `expected` arrived or nothing came for `stallMs`;
 * the result gives the rate, latency percentiles in ms and this process's CPU.
 */
function collector (expected, stallMs) {
  const latencies = new Float64Array(expected)
  let delivered = 0
  let start = 0
  let last = 0
  let cpu0 = 0
  let resolveDone
  const done = new Promise((resolve) => { resolveDone = resolve })
  let seen = -1
  let stall
  return {
    record (ts) {
      const now = nowMicros()
      if (delivered < expected) latencies[delivered] = now - ts
      last = now
      if (++delivered === expected) resolveDone()
    },
    begin () {
      for (const c of clients) c.onDelivery = noop
      cpu0 = cpuMicros()
      start = nowMicros()
      stall = setInterval(() => {
        if (delivered === seen) resolveDone()
        seen = delivered
      }, stallMs)
    },
    async result () {
      await done
      clearInterval(stall)
      const clientCpu = cpuMicros() - cpu0
      const n = Math.min(delivered, expected)
      const sorted = latencies.subarray(0, n).sort()
      const seconds = (last - start) / 1e6
      return {
        expected,
        delivered,
        complete: delivered >= expected,
        ms: seconds * 1000,
        perSecond: n / seconds,
        p50: percentile(sorted, 0.5) / 1000,
        p99: percentile(sorted, 0.99) / 1000,
        max: n > 0 ? sorted[n - 1] / 1000 : NaN,
        clientCpuPerDelivery: clientCpu / Math.max(1, n),
        errors: clients.reduce((sum, c) => sum + c.errors, 0)
      }
    }
  }
}

serve({
  /**
   * Open `count` more clients, `concurrency` handshakes at a time (the ones
   * already open stay): upgrades per second and the time from each client's
   * start to its `open` (p50, p99, max in ms).
   */
  async connect ({ port, path, client, count, concurrency }) {
    const url = client === 'socketio' ? `http://127.0.0.1:${port}` : `ws://127.0.0.1:${port}${path}`
    const first = clients.length
    for (let i = first; i < first + count; i++) {
      clients.push(client === 'socketio' ? new SocketIoClient(url, path) : new EnvelopeClient(url, signToken(`user-${i}`)))
    }
    const toOpen = new Float64Array(count)
    const cpu0 = cpuMicros()
    const start = performance.now()
    await pool(count, concurrency, async (i) => {
      const t0 = performance.now()
      await clients[first + i].open()
      toOpen[i] = performance.now() - t0
    })
    const ms = performance.now() - start
    toOpen.sort()
    return {
      count,
      ms,
      perSecond: count / (ms / 1000),
      openP50: percentile(toOpen, 0.5),
      openP99: percentile(toOpen, 0.99),
      openMax: toOpen[count - 1],
      clientCpuPerConnection: (cpuMicros() - cpu0) / count
    }
  },

  /**
   * Each plan `{ room, from, to, pairs }` makes clients [from, to) join `room`,
   * or with `pairs` makes clients from+2i and from+2i+1 share `room-i`.
   */
  async join ({ plans, concurrency }) {
    const start = performance.now()
    await Promise.all(plans.map(({ room, from, to, pairs = false }) =>
      pool(to - from, concurrency, (i) => clients[from + i].join(pairs ? `${room}-${i >> 1}` : room))))
    return { ms: performance.now() - start }
  },

  /** Client 0 sends `k` messages at once to `room`; clients [1, to) are its other members. */
  async burst ({ room, to, k, stallMs }) {
    const c = collector((to - 1) * k, stallMs)
    c.begin()
    for (let i = 1; i < to; i++) clients[i].onDelivery = c.record
    const publisher = clients[0]
    for (let seq = 0; seq < k; seq++) publisher.publish(room, messageData(seq, nowMicros()))
    return await c.result()
  },

  /** Client 0 sends `k` messages to `room`, one every `intervalMs`: latency when not saturated. */
  async paced ({ room, to, k, intervalMs, stallMs }) {
    const c = collector((to - 1) * k, stallMs)
    c.begin()
    for (let i = 1; i < to; i++) clients[i].onDelivery = c.record
    const publisher = clients[0]
    for (let seq = 0; seq < k; seq++) {
      publisher.publish(room, messageData(seq, nowMicros()))
      await sleep(intervalMs)
    }
    return await c.result()
  },

  /**
   * Clients [from, to), in pair rooms `room-i`, each send one message and
   * answer each one they get until they sent `m`: a closed loop, every pair busy.
   */
  async chat ({ room, from, to, m, stallMs }) {
    const c = collector((to - from) * m, stallMs)
    c.begin()
    for (let i = from; i < to; i++) {
      const client = clients[i]
      const name = `${room}-${(i - from) >> 1}`
      client.sent = 0
      client.onDelivery = (ts) => {
        c.record(ts)
        if (client.sent < m) client.publish(name, messageData(++client.sent, nowMicros()))
      }
    }
    for (let i = from; i < to; i++) {
      const client = clients[i]
      client.publish(`${room}-${(i - from) >> 1}`, messageData(++client.sent, nowMicros()))
    }
    return await c.result()
  },

  close () {
    for (const c of clients) c.close()
    clients = []
    return true
  },

  /** Close every client with a closing handshake (not a reset), as users leaving do. */
  async leave () {
    await Promise.all(clients.map((c) => c.leave()))
    clients = []
    return true
  }
})

ready()
