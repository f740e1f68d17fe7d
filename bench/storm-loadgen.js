// The clients of the reconnect-storm bench: N instances of the plugin's own
// client (fastify-realtime/client), in one process, all in room `storm`. They
// reach "the service" through a client-side balancer: a WebSocket constructor
// that connects to whichever instance is current, as a load balancer that took
// a draining instance out of rotation would.
//
// IPC: `connect` ({ count, url, concurrency }), `switch` ({ url }),
// `watch` ({ timeoutMs }): resolves when every client is back and resumed,
// `close`.
import WebSocket from 'ws'
import { createClient } from 'fastify-realtime/client'
import { ready, serve } from './lib/ipc.js'
import { signToken } from './lib/protocol.js'

let backend = ''
/** Every connection attempt goes to the current instance, whatever URL the client holds. */
class Balanced extends WebSocket {
  constructor (_url, protocols, options) {
    super(backend, protocols, options)
  }
}

/** @type {Array<{ client: any, last: number, epoch: string | undefined, gaps: number, resyncs: number, closes: Array<{ code: number, reason: string, at: number }>, resumed?: { at: number, recovered: boolean } }>} */
const clients = []
let watching
/** the first few gaps, for the report */
const gapSamples = []

function track (state) {
  const { client } = state
  client.on('tick', (_data, msg) => {
    if (msg.offset === undefined) return
    if (state.last !== 0 && msg.offset !== state.last + 1) {
      state.gaps++
      if (gapSamples.length < 5) gapSamples.push({ client: clients.indexOf(state), had: state.last, got: msg.offset, resumed: state.resumed !== undefined, closes: state.closes.length, at: Date.now() })
    }
    state.last = msg.offset
  })
  client.on('resync', () => {
    state.resyncs++
    state.last = 0 // the client adopted the server's position: the next offset starts a new run
  })
  client.on('close', ({ code, reason }) => { state.closes.push({ code, reason, at: Date.now() }) })
  client.on('open', () => {
    if (watching === undefined || state.closes.length === 0 || state.resumed !== undefined) return
    state.openedAt ??= Date.now()
    // a re-join is under way: join() answers with its ack
    client.join('storm').then((ack) => {
      state.resumed = { at: Date.now(), recovered: ack.recovered === true, ack }
      watching?.check()
    }, () => {})
  })
}

serve({
  async connect ({ count, url, concurrency }) {
    backend = url
    const started = Date.now()
    for (let i = 0; i < count; i += concurrency) {
      const batch = []
      for (let j = i; j < Math.min(count, i + concurrency); j++) {
        const client = createClient(url, { token: signToken(`user-${j}`), WebSocket: Balanced, heartbeat: false, rooms: ['storm'] })
        const state = { client, last: 0, epoch: undefined, gaps: 0, resyncs: 0, closes: [] }
        clients.push(state)
        track(state)
        batch.push(client.join('storm'))
      }
      await Promise.all(batch)
    }
    return { tookMs: Date.now() - started }
  },
  switch ({ url }) {
    backend = url
    return true
  },
  async watch ({ timeoutMs }) {
    const started = Date.now()
    const cpu0 = process.cpuUsage()
    return await new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer)
        watching = undefined
        const resumed = clients.filter((s) => s.resumed !== undefined)
        const closes = clients.flatMap((s) => s.closes.slice(0, 1))
        // per client: from its close to its resumed join
        const away = resumed.map((s) => s.resumed.at - s.closes[0].at).sort((x, y) => x - y)
        const toOpen = resumed.map((s) => s.openedAt - s.closes[0].at).sort((x, y) => x - y)
        const at = (q, list = away) => list.length === 0 ? NaN : list[Math.min(list.length - 1, Math.floor(q * list.length))]
        resolve({
          awayMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: away.at(-1) },
          closeToOpenMs: { p50: at(0.5, toOpen), p99: at(0.99, toOpen), max: toOpen.at(-1) },
          attempts: clients.reduce((sum, s) => sum + s.closes.length, 0),
          clients: clients.length,
          cpuMs: (() => { const c = process.cpuUsage(cpu0); return Math.round((c.user + c.system) / 1000) })(),
          resumed: resumed.length,
          recovered: resumed.filter((s) => s.resumed.recovered).length,
          firstCloseAt: Math.min(...closes.map((c) => c.at)),
          lastCloseAt: Math.max(...closes.map((c) => c.at)),
          lastResumedAt: Math.max(...resumed.map((s) => s.resumed.at)),
          closeCodes: [...new Set(closes.map((c) => `${c.code} ${c.reason}`))],
          gaps: clients.reduce((sum, s) => sum + s.gaps, 0),
          gapSamples,
          notRecovered: resumed.filter((s) => !s.resumed.recovered).slice(0, 3).map((s) => s.resumed.ack),
          resyncs: clients.reduce((sum, s) => sum + s.resyncs, 0),
          watchedMs: Date.now() - started
        })
      }
      const timer = setTimeout(finish, timeoutMs)
      watching = { check: () => { if (clients.every((s) => s.resumed !== undefined)) finish() } }
    })
  },
  close () {
    for (const { client } of clients) client.close()
    clients.length = 0
    return true
  }
})

ready()
