import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import type WebSocket from 'ws'
import realtime, { type RealtimeOptions } from '../lib/index.js'
import { closeAllConnections } from '../lib/shutdown.js'
import { frameWriter } from '../lib/ws/writer.js'
import { SECRET, build, closed, connect, inject, listen, sign, sleep, type Inbox, hub } from './helpers.js'

t.setTimeout(30_000)

interface Setup {
  app: FastifyInstance
  url: string
  open: (sub: string, options?: WebSocket.ClientOptions) => Promise<Inbox>
  closes: Array<{ sub: string | null, code: number, at: number }>
}

async function setup (t: Parameters<typeof build>[0], opts: RealtimeOptions = {}): Promise<Setup> {
  const closes: Setup['closes'] = []
  const app = await build(t, {
    heartbeat: { interval: 60_000 },
    ...opts,
    routes: [{ path: '/rt', onClose: (conn, code) => { closes.push({ sub: conn.sub, code, at: Date.now() }) } }]
  })
  const url = await listen(app)
  const open = async (sub: string, options: WebSocket.ClientOptions = {}): Promise<Inbox> =>
    await connect(`${url}/rt`, { ...options, headers: { authorization: `Bearer ${sign(app, sub)}` } })
  return { app, url, open, closes }
}

/** Stop reading: the client never sees the close frame, so never answers it. */
function deaf (inbox: Inbox): void {
  (inbox.ws as any)._socket.pause()
}

t.test('app.close() sends 1001 to every client and finishes as soon as they close back', async (t) => {
  const s = await setup(t, { closeGracePeriod: 5000 })
  const clients = await Promise.all(['a', 'b', 'c'].map((sub) => s.open(sub)))
  await clients[0].request({ type: 'join', room: 'r', id: 1 })
  const injected = await inject(s.app, '/rt', sign(s.app, 'd'))
  const codes = Promise.all([...clients, injected].map((c) => closed(c.ws)))
  const started = Date.now()
  await s.app.close()
  const took = Date.now() - started
  t.same(await codes, Array(4).fill({ code: 1001, reason: 'server shutting down' }), 'every client, injected ones too')
  t.ok(took < 2000, `did not wait out the 5 s grace period (${took} ms)`)
  t.equal(s.closes.length, 4, 'every onClose ran before close() resolved')
  t.ok(s.closes.every((c) => c.code === 1001 || c.code === 1006))
  t.equal(s.closes.filter((c) => c.sub !== 'd').every((c) => c.code === 1001), true, 'real clients echoed 1001')
  t.same(s.app.realtime.stats().connections, 0)
  t.same(s.app.realtime.rooms(), [])
})

t.test('clients that do not close back are terminated after closeGracePeriod', async (t) => {
  const grace = 300
  const s = await setup(t, { closeGracePeriod: grace })
  const polite = await s.open('polite')
  const rude = await s.open('rude')
  deaf(rude)
  const politeClosed = closed(polite.ws)
  const started = Date.now()
  await s.app.close()
  const took = Date.now() - started
  t.ok(took >= grace - 20, `waited for the grace period (${took} ms)`)
  t.ok(took < grace + 1500, 'then stopped waiting')
  t.same(await politeClosed, { code: 1001, reason: 'server shutting down' })
  const politeAt = s.closes.find((c) => c.sub === 'polite')?.at ?? Infinity
  t.ok(politeAt - started < grace, 'the polite one closed at once')
  t.same(s.closes.find((c) => c.sub === 'rude')?.code, 1006, 'the deaf one was terminated')
  t.equal(s.closes.length, 2, 'both onClose hooks ran before close() resolved')
  ;(rude.ws as any)._socket.resume()
  const { code } = await closed(rude.ws)
  t.ok(code === 1001 || code === 1006, `the deaf client finds its socket gone (${code})`)
})

t.test('with only injected sockets, close() still waits out the grace period and resolves', async (t) => {
  const app = await build(t, { heartbeat: false, closeGracePeriod: 200, routes: [{ path: '/rt' }] })
  await app.ready()
  const polite = await inject(app, '/rt', sign(app, 'polite'))
  const deafInjected = await inject(app, '/rt', sign(app, 'deaf'))
  ;(deafInjected.ws as any)._socket.pause() // never reads the close frame
  const politeClosed = closed(polite.ws)
  const started = Date.now()
  await app.close() // no listening socket: only close()'s own timer keeps the process alive
  const took = Date.now() - started
  t.ok(took >= 180 && took < 1500, `waited for the deaf one, then dropped it (${took} ms)`)
  t.same(await politeClosed, { code: 1001, reason: 'server shutting down' })
  t.equal(app.realtime.stats().connections, 0, 'both gone: the injected stream closes once both sides are done')
})

t.test('closeGracePeriod: 0 terminates at once', async (t) => {
  const s = await setup(t, { closeGracePeriod: 0 })
  const rude = await s.open('rude')
  deaf(rude)
  const started = Date.now()
  await s.app.close()
  t.ok(Date.now() - started < 1000)
  t.same(s.closes.map((c) => c.code), [1006])
})

t.test('new upgrades during close are refused with 503', async (t) => {
  const s = await setup(t, { closeGracePeriod: 400 })
  const rude = await s.open('rude')
  deaf(rude)
  const closing = s.app.close()
  await sleep(50)
  t.equal(s.app.realtime.stats().connections, 1, 'still waiting for the deaf client')
  const refused = await s.open('late').then(() => undefined, (err: { statusCode?: number }) => err.statusCode)
  t.equal(refused, 503, 'a real client')
  await t.rejects(inject(s.app, '/rt', sign(s.app, 'late')), /503/, 'an injected one')
  await closing
  t.equal(s.app.realtime.stats().connections, 0)
})

t.test('an upgrade that passed its checks as close began is closed with 1001', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  let arrived: () => void = () => {}
  const atHandler = new Promise<void>((resolve) => { arrived = resolve })
  let go: () => void = () => {}
  const gate = new Promise<void>((resolve) => { go = resolve })
  // runs after the realtime handshake hook (onRequest), before the upgrade handler
  app.addHook('preHandler', async (request) => {
    if (request.headers['x-hold'] !== undefined) {
      arrived()
      await gate
    }
  })
  await app.register(realtime, { heartbeat: false, closeGracePeriod: 200, routes: [{ path: '/rt' }] })
  const url = await listen(app)
  // a deaf client keeps close() waiting, so @fastify/websocket has not shut its ws server yet
  const rude = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'rude')}` } })
  deaf(rude)
  const held = connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'held')}`, 'x-hold': '1' } })
  await atHandler
  const closing = app.close()
  await sleep(20)
  go()
  const inbox = await held
  t.same(await closed(inbox.ws), { code: 1001, reason: 'server shutting down' })
  await closing
  t.equal(hub(app).limits.active, 0, 'its slot was released')
})

const WATCHED = new Set(['Timeout', 'TCPSocketWrap', 'TCPServerWrap', 'Immediate'])

function handles (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) {
    if (WATCHED.has(type)) counts[type] = (counts[type] ?? 0) + 1
  }
  return counts
}

/** Every timer created while tracking, to find the live ones later (unref()'d ones too). */
function trackTimers (t: { after: (fn: () => unknown) => void }): { live: () => string[], stop: () => void } {
  const created: Array<{ handle: NodeJS.Timeout, stack: string }> = []
  const realTimeout = globalThis.setTimeout
  const realInterval = globalThis.setInterval
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    const handle = realTimeout(...args)
    created.push({ handle, stack: new Error('setTimeout').stack ?? '' })
    return handle
  }) as typeof setTimeout
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    const handle = realInterval(...args)
    created.push({ handle, stack: new Error('setInterval').stack ?? '' })
    return handle
  }) as typeof setInterval
  const stop = (): void => {
    globalThis.setTimeout = realTimeout
    globalThis.setInterval = realInterval
  }
  t.after(stop)
  return {
    live: () => created.filter((c) => (c.handle as unknown as { _destroyed: boolean })._destroyed !== true).map((c) => c.stack),
    stop
  }
}

t.test('after close no timers, sockets, servers or listeners remain', async (t) => {
  await sleep(20) // let earlier tests' handles go
  const before = handles()
  const processListeners = process.eventNames().map((name) => [String(name), process.listenerCount(name)])
  const timers = trackTimers(t)

  const s = await setup(t, {
    heartbeat: { interval: 5000 }, // armed, but never long enough to kill the deaf client
    closeGracePeriod: 10_000, // longer than the test: a timer left armed shows up below
    maxBufferedBytes: 64 * 1024
  })
  const clients = await Promise.all(['a', 'b', 'c'].map((sub) => s.open(sub)))
  const expiring = await s.open('exp', {})
  for (const c of clients) await c.request({ type: 'join', room: 'r', id: 1 })
  await expiring.request({ type: 'auth', id: 2, data: { token: sign(s.app, 'exp', { exp: Math.floor(Date.now() / 1000) + 3600 }) } })
  const rude = await s.open('rude')
  await rude.request({ type: 'join', room: 'r', id: 1 })
  deaf(rude)
  // a slow consumer caught mid-close: its drop timer must go too
  const payload = 'x'.repeat(32 * 1024)
  for (let i = 0; i < 400 && s.app.realtime.connections().find((c) => c.sub === 'rude')?.open === true; i++) {
    s.app.realtime.broadcast('r', 'flood', payload)
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.notOk(s.app.realtime.connections().find((c) => c.sub === 'rude')?.open, 'the deaf client was caught as a slow consumer')
  // it reads again and closes back: its drop timer must be cleared, not left to fire
  const rudeClosed = closed(rude.ws)
  ;(rude.ws as any)._socket.resume()
  t.equal((await rudeClosed).code, 1013)
  await sleep(20)
  s.app.realtime.broadcast('r', 'last', {}) // corked when close begins
  const server = s.app.server
  const wss = (s.app as any).websocketServer

  await s.app.close()
  timers.stop()
  await new Promise((resolve) => setImmediate(resolve))
  for (const c of [...clients, expiring, rude]) c.ws.terminate()
  await sleep(20)

  t.same(timers.live(), [], 'every timer made while the app ran was cleared or fired')
  t.same(handles(), before, 'no timer, immediate, socket or server handle left')
  t.equal(server.listening, false)
  t.equal(server.listenerCount('upgrade'), 0, 'no upgrade listener')
  t.equal(wss.clients, undefined, 'ws tracks no clients (the plugin does), so it holds none')
  t.same(process.eventNames().map((name) => [String(name), process.listenerCount(name)]), processListeners, 'no process listener added')
  t.equal(s.app.realtime.stats().connections, 0)
  t.equal(hub(s.app).limits.active, 0, 'every connection slot released')
  t.same(s.app.realtime.rooms(), [])
})

async function foreignApp (t: Parameters<typeof build>[0], wsOptions: Record<string, unknown>, opts: RealtimeOptions): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket, { options: wsOptions })
  await app.register(realtime, { heartbeat: false, closeGracePeriod: 1000, ...opts, routes: [{ path: '/rt' }] })
  const url = await listen(app)
  return { app, url }
}

t.test('@fastify/websocket registered by the app first: clients still see 1001, maxPayload still applies', async (t) => {
  const { app, url } = await foreignApp(t, {}, { maxPayload: 256 })
  t.equal(hub(app).foreignWebsocket, true)
  const bearer = { headers: { authorization: `Bearer ${sign(app, 'a')}` } }
  const big = await connect(`${url}/rt`, bearer)
  const base = '{"type":"ping","data":""}'
  big.send(`{"type":"ping","data":"${'a'.repeat(256 - base.length)}"}`)
  t.same(await big.type('pong'), { type: 'pong' }, 'maxPayload bytes pass')
  const bigClosed = closed(big.ws)
  big.send(`{"type":"ping","data":"${'a'.repeat(300)}"}`)
  const { code } = await bigClosed
  t.ok(code === 1009 || code === 1006, `over it, closed (${code})`)
  t.equal(app.realtime.stats().connections, 0, 'and gone from the server')

  const clients = await Promise.all([1, 2].map(async () => await connect(`${url}/rt`, bearer)))
  const codes = Promise.all(clients.map((c) => closed(c.ws)))
  const started = Date.now()
  await app.close()
  t.same(await codes, [{ code: 1001, reason: 'server shutting down' }, { code: 1001, reason: 'server shutting down' }])
  t.ok(Date.now() - started < 1000, 'no waiting out the grace period')
})

t.test('@fastify/websocket registered first with compression: maxPayload applies to the inflated size', async (t) => {
  const { app, url } = await foreignApp(t, { perMessageDeflate: true }, { maxPayload: 1024 })
  const c = await connect(`${url}/rt`, { perMessageDeflate: true, headers: { authorization: `Bearer ${sign(app, 'a')}` } })
  t.match(c.ws.extensions, /permessage-deflate/)
  c.send({ type: 'ping', data: 'z'.repeat(900) })
  t.same(await c.type('pong'), { type: 'pong' })
  const done = closed(c.ws)
  c.send({ type: 'ping', data: 'z'.repeat(10_000) }) // a few dozen bytes on the wire
  const { code } = await done
  t.ok(code === 1009 || code === 1006, `closed (${code})`)
  t.equal(app.realtime.stats().connections, 0)
})

t.test('close with no connections is immediate', async (t) => {
  const s = await setup(t, { closeGracePeriod: 5000 })
  const started = Date.now()
  await s.app.close()
  t.ok(Date.now() - started < 500)
})

t.test('closeAllConnections does not wait for a socket that is already closed', async (t) => {
  const calls: string[] = []
  const conn = {
    ws: { readyState: 3, once () { calls.push('once') } },
    close () { calls.push('close') },
    terminate () { calls.push('terminate') }
  }
  const server = { closing: false, connections: () => [conn], options: { closeGracePeriod: 5000, drain: { spread: 0, retry: 1000 } } }
  const flush = frameWriter.flush
  frameWriter.flush = () => { calls.push('flush') }
  t.teardown(() => { frameWriter.flush = flush })
  const started = Date.now()
  await closeAllConnections(server as any)
  t.ok(Date.now() - started < 500, 'no grace period to wait out')
  t.equal(server.closing, true, 'new upgrades are refused from here on')
  t.same(calls, ['close', 'flush'], 'closed (a no-op for it), frames flushed, nothing to terminate')
})

t.test('@fastify/websocket registered by the app: a client\'s code-less close is answered as such, not with 1001', async (t) => {
  const { app, url } = await foreignApp(t, {}, {})
  const c = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'x')}` } })
  const done = closed(c.ws)
  c.ws.close()
  t.same(await done, { code: 1005, reason: '' }, 'no code either way')
})
