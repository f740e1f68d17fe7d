import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type WebSocket from 'ws'
import type { RealtimeConnection as Connection } from '../lib/connection.js'
import { HeartbeatSweep, heard } from '../lib/heartbeat.js'
import { kAlive, kReadMark } from '../lib/symbols.js'
import type { RealtimeOptions } from '../lib/index.js'
import { build, closed, connect, inject, listen, sign, sleep, type Inbox, hub } from './helpers.js'
import { until } from './support/upgrade.js'

t.setTimeout(30_000)

// small, but with room for a busy shared machine: a stalled event loop looks like a missing pong
const INTERVAL = 100

async function setup (t: Parameters<typeof build>[0], opts: RealtimeOptions = {}): Promise<{ app: FastifyInstance, open: (sub: string, options?: WebSocket.ClientOptions) => Promise<Inbox>, closes: Array<{ sub: string | null, code: number }> }> {
  const closes: Array<{ sub: string | null, code: number }> = []
  const app = await build(t, {
    heartbeat: { interval: INTERVAL },
    ...opts,
    routes: [{ path: '/rt', onClose: (conn, code) => { closes.push({ sub: conn.sub, code }) } }]
  })
  const url = await listen(app)
  const open = async (sub: string, options: WebSocket.ClientOptions = {}): Promise<Inbox> =>
    await connect(`${url}/rt`, { ...options, headers: { authorization: `Bearer ${sign(app, sub)}` } })
  return { app, open, closes }
}

function countPings (inbox: Inbox): { count: number } {
  const pings = { count: 0 }
  inbox.ws.on('ping', () => { pings.count++ })
  return pings
}

t.test('a client that does not answer pings is terminated within two intervals and leaves its rooms', async (t) => {
  const { app, open, closes } = await setup(t)
  const mute = await open('mute', { autoPong: false })
  const started = Date.now()
  const mutePings = countPings(mute)
  const muteClosed = closed(mute.ws)
  const live = await open('live')
  const livePings = countPings(live)
  // joined from the server side: no round trip that the heartbeat could overtake
  for (const conn of hub(app).connections()) await conn.join('r')
  t.same((await app.realtime.members('r')).length, 2)

  const { code } = await muteClosed
  const after = Date.now() - started
  t.equal(code, 1006, 'terminated: no closing handshake')
  t.equal(mutePings.count, 1, 'pinged once; the next sweep terminated it')
  t.ok(after <= 2 * INTERVAL + 150, `within two intervals, give or take a busy machine (${after} ms)`)
  await sleep(10)
  t.same(closes, [{ sub: 'mute', code: 1006 }], 'the server closed it')
  t.same((await app.realtime.members('r')).map((m) => m.sub), ['live'], 'and it left its rooms')

  await sleep(4 * INTERVAL)
  t.equal(live.ws.readyState, live.ws.OPEN, 'a client that answers stays')
  t.ok(livePings.count >= 3, `and keeps being pinged (${livePings.count})`)
  t.equal(app.realtime.stats().connections, 1)
})

t.test('any message counts as an answer', async (t) => {
  const { app, open } = await setup(t)
  const chatty = await open('chatty', { autoPong: false })
  const pings = countPings(chatty)
  const timer = setInterval(() => chatty.send({ type: 'ping' }), INTERVAL / 3)
  t.after(() => clearInterval(timer))
  await sleep(5 * INTERVAL)
  clearInterval(timer)
  t.equal(chatty.ws.readyState, chatty.ws.OPEN, 'still open after five intervals without pongs')
  t.ok(pings.count >= 3, 'pinged all along')
  t.equal(app.realtime.stats().connections, 1)
  const done = closed(chatty.ws)
  t.equal((await done).code, 1006, 'once it goes quiet it is terminated')
})

t.test('heartbeat: false never pings', async (t) => {
  const { app, open } = await setup(t, { heartbeat: false })
  const mute = await open('mute', { autoPong: false })
  const pings = countPings(mute)
  await sleep(4 * INTERVAL)
  t.equal(pings.count, 0, 'no ping')
  t.equal(mute.ws.readyState, mute.ws.OPEN, 'not terminated')
  t.equal(app.realtime.stats().connections, 1)
})

t.test('the default interval is 30 s: nothing is pinged early', async (t) => {
  const { open } = await setup(t, { heartbeat: {} })
  const c = await open('c', { autoPong: false })
  const pings = countPings(c)
  await sleep(3 * INTERVAL)
  t.equal(pings.count, 0)
})

/** A stand-in for a connection: what the sweep reads and calls. */
function fakeConn (readyState = 1): Connection & { pings: number, terminated: number, isAlive: boolean } {
  const fake = {
    id: 'x',
    [kAlive]: true,
    [kReadMark]: -1, // not a TCP socket: liveness is the flag alone
    get isAlive () { return fake[kAlive] },
    set isAlive (value: boolean) { fake[kAlive] = value },
    pings: 0,
    terminated: 0,
    log: { debug () {} },
    ws: { readyState, ping () { fake.pings++ } },
    terminate () { fake.terminated++ }
  }
  return fake as unknown as Connection & { pings: number, terminated: number, isAlive: boolean }
}

t.test('HeartbeatSweep: ping the live, terminate the silent, skip pings to closing sockets', async (t) => {
  const open = fakeConn()
  const closing = fakeConn(2)
  const sweep = new HeartbeatSweep(1000, () => [open, closing])
  sweep.sweep()
  t.equal(open.pings, 1)
  t.equal(open.isAlive, false, 'waits for a pong')
  t.equal(closing.pings, 0, 'a closing socket is not pinged')
  open.isAlive = true // a pong arrived
  sweep.sweep()
  t.equal(open.pings, 2)
  t.equal(open.terminated, 0)
  t.equal(closing.terminated, 1, 'a socket stuck closing is dropped on the next sweep')
  sweep.sweep()
  t.equal(open.terminated, 1, 'no pong since the last sweep: terminated')
  t.equal(open.pings, 2, 'and not pinged again')
})

t.test('HeartbeatSweep: start is idempotent, stop clears the timer, the timer does not hold the process', async (t) => {
  const refTimers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = refTimers()
  let calls = 0
  const sweep = new HeartbeatSweep(10, () => { calls++; return [] })
  sweep.start()
  sweep.start()
  t.equal(refTimers(), before, 'unref()\'d: it keeps no process alive')
  await sleep(55)
  t.ok(calls >= 3 && calls <= 6, `one sweep an interval however often started (${calls})`)
  sweep.stop()
  const stopped = calls
  await sleep(30)
  t.equal(calls, stopped, 'no sweep after stop')
  sweep.stop() // twice is fine
  sweep.start()
  await sleep(25)
  t.ok(calls > stopped, 'can start again')
  sweep.stop()
})

t.test('app.close() stops the sweep', async (t) => {
  const app = await build({ after: () => {} }, { heartbeat: { interval: 10 }, routes: [{ path: '/rt' }] })
  let sweeps = 0
  const connections = hub(app).connections.bind(hub(app))
  hub(app).connections = () => { sweeps++; return connections() }
  await app.ready()
  await sleep(35)
  t.ok(sweeps >= 2, 'sweeping once ready')
  await app.close()
  const after = sweeps
  await sleep(35)
  t.equal(sweeps, after, 'no sweep after close')
})

t.test('app.injectWS: a client that answers pings stays, one that does not is terminated', async (t) => {
  const closes: Array<{ sub: string | null, code: number }> = []
  const app = await build(t, {
    heartbeat: { interval: INTERVAL },
    routes: [{ path: '/rt', onClose: (conn, code) => { closes.push({ sub: conn.sub, code }) } }]
  })
  await app.ready()
  // injected streams have no bytesRead: their pongs are counted by a listener
  const answering = await inject(app, '/rt', sign(app, 'answering'))
  answering.ws.on('ping', () => answering.ws.pong())
  const mute = await inject(app, '/rt', sign(app, 'mute'))
  await until(() => closes.length === 1, 3000)
  t.same(closes, [{ sub: 'mute', code: 1006 }], 'the mute one was terminated')
  await sleep(3 * INTERVAL)
  t.equal(answering.ws.readyState, answering.ws.OPEN, 'the answering one stays')
  t.same(hub(app).connections().map((c) => c.sub), ['answering'])
  mute.ws.terminate()
  answering.ws.terminate()
})

t.test('Connection.heard(): a TCP connection is heard when its socket read anything since the last call', async (t) => {
  const { app, open } = await setup(t, { heartbeat: false })
  const client = await open('c', { autoPong: false })
  const [conn] = hub(app).connections()
  t.equal(heard(conn), true, 'the first sweep: the handshake was read')
  t.equal(heard(conn), false, 'nothing since')
  client.ws.ping() // a control frame: no message event on the server
  await until(() => ((conn.ws as any)._socket.bytesRead as number) > conn[kReadMark])
  t.equal(heard(conn), true, 'any bytes count, a ping or pong frame included')
  t.equal(heard(conn), false)
  client.ws.terminate()
})
