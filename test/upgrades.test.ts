import t from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { once } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { SECRET, build, closed, connect, listen, sign, sleep, hub } from './helpers.js'
import realtime from '../lib/index.js'
import { SharedStrings, UpgradeRequest } from '../lib/request.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Collect garbage (a few passes, with turns between) until every ref is cleared or the passes run out. */
async function collect (...refs: Array<WeakRef<object> | undefined>): Promise<void> {
  for (let i = 0; i < 5 && refs.some((ref) => ref?.deref() !== undefined); i++) {
    await sleep(10)
    gc()
  }
}

/** The value @fastify/websocket stored under its `ws-head` symbol on a raw request. */
function headOf (raw: object): unknown {
  const key = Object.getOwnPropertySymbols(raw).find((k) => k.description === 'ws-head')
  return key === undefined ? undefined : (raw as Record<symbol, unknown>)[key]
}

t.test('an open connection keeps neither the upgrade\'s Reply, its ServerResponse nor the head buffer; it still works', async (t) => {
  const app = await build(t, { heartbeat: false, routes: [{ path: '/rt' }] })
  const refs: Array<WeakRef<object>> = []
  let headSeen = false
  app.addHook('onRequest', async (request, reply) => {
    headSeen ||= headOf(request.raw) !== undefined
    refs.push(new WeakRef(reply), new WeakRef(reply.raw))
  })
  const url = await listen(app)
  const client = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'alice')}` } })
  t.equal(refs.length, 2)
  t.ok(headSeen, 'the head was there during the handshake')
  const [conn] = hub(app).connections()
  t.equal(headOf(conn.request.raw), undefined, 'and is gone from the request once open')
  t.equal(conn.request.headers.authorization?.startsWith('Bearer '), true, 'conn.request still has the headers')
  const socket = (conn.ws as any)._socket
  t.equal(socket._httpMessage, null, 'the socket no longer points at the ServerResponse')
  t.equal(conn.ws.listenerCount('error'), 1, 'one error listener: the plugin\'s')
  await collect(...refs)
  t.same(refs.map((ref) => ref.deref()), [undefined, undefined], 'Reply and ServerResponse were collected')

  client.send({ type: 'ping' })
  t.same(await client.type('pong'), { type: 'pong' }, 'the connection still answers')
  const done = closed(client.ws)
  await app.close()
  t.equal((await done).code, 1001, 'and is closed with 1001 on shutdown')
  t.equal(hub(app).limits.active, 0, 'its slot was released')
})

t.test('@fastify/websocket registered by the app: its errorHandler still gets protocol errors', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  const errors: Array<{ code?: string }> = []
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket, {
    errorHandler (err, socket) {
      errors.push(err as { code?: string })
      socket.terminate()
    }
  })
  await app.register(realtime, { heartbeat: false, routes: [{ path: '/rt' }] })
  const url = await listen(app)
  const client = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'bob')}` } })
  const done = closed(client.ws)
  client.ws.send(Buffer.from([0xc3, 0x28]), { binary: false }) // invalid UTF-8
  await done
  t.match(errors, [{ code: 'WS_ERR_INVALID_UTF8' }], 'the app\'s handler saw it')
})

t.test('the upgrade-socket tracker lets go of a socket once a connection owns it; an app\'s own error listener stays', async (t) => {
  const app = await build(t, { heartbeat: false, routes: [{ path: '/rt' }] })
  const appErrors: Error[] = []
  // an app listening on the ws server adds its listener before @fastify/websocket's own
  ;(app as any).websocketServer.on('connection', (ws: any) => { ws.on('error', (err: Error) => appErrors.push(err)) })
  const url = await listen(app)
  const client = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'carol')}` } })
  const [conn] = hub(app).connections()
  const socket = (conn.ws as any)._socket
  t.notOk(socket.listeners('close').some((listener: { name: string }) => listener.name === 'forget'), 'no close listener of the tracker')
  t.equal(conn.ws.listenerCount('error'), 2, 'the app\'s and the plugin\'s')
  const done = closed(client.ws)
  client.ws.send(Buffer.from([0xc3, 0x28]), { binary: false }) // invalid UTF-8
  t.equal((await done).code, 1007)
  t.match(appErrors, [{ code: 'WS_ERR_INVALID_UTF8' }], 'the app\'s listener still saw the error')
})

t.test('conn.request keeps what apps read from it and lets go of the IncomingMessage', async (t) => {
  const app = await build(t, { heartbeat: false, routes: [{ path: '/rt' }] }, { trustProxy: true })
  app.decorateRequest('tenant', '')
  let message: WeakRef<object> | undefined
  let requestId = ''
  app.addHook('onRequest', async (request) => {
    ;(request as any).tenant = request.headers['x-tenant']
    message = new WeakRef(request.raw)
    requestId = request.id
  })
  const url = await listen(app)
  const headers = { authorization: `Bearer ${sign(app, 'dora')}`, 'x-tenant': 'acme', 'user-agent': 'test-agent/1.0', 'x-forwarded-for': '203.0.113.7' }
  const client = await connect(`${url}/rt?room=lobby`, { headers })
  const [conn] = hub(app).connections()
  const request = conn.request
  t.ok(request.raw instanceof UpgradeRequest, 'raw is the slim stand-in')
  t.equal(request.id, requestId, 'id')
  t.equal((request as any).tenant, 'acme', 'what a hook set')
  t.equal(request.headers['user-agent'], 'test-agent/1.0', 'headers')
  t.equal(request.headers['x-tenant'], 'acme')
  t.equal(request.ip, '203.0.113.7', 'ip (trustProxy reads X-Forwarded-For)')
  t.same(request.ips, ['127.0.0.1', '203.0.113.7'], 'ips')
  t.equal(request.hostname, '127.0.0.1', 'hostname')
  t.equal(request.url, '/rt?room=lobby', 'url')
  t.equal(request.method, 'GET', 'method')
  t.same({ ...(request.query as object) }, { room: 'lobby' }, 'query')
  t.equal(request.protocol, 'http', 'protocol')
  t.equal(request.raw.httpVersion, '1.1', 'httpVersion')
  t.equal(conn.log, request.log, 'the request logger is the connection logger')
  await collect(message)
  t.equal(message?.deref(), undefined, 'the IncomingMessage was collected')
  const signal = request.signal
  t.equal(signal.aborted, false, 'request.signal works on an open connection')
  const done = closed(client.ws)
  client.ws.close()
  await done
  for (let i = 0; i < 50 && !signal.aborted; i++) await sleep(5)
  t.equal(signal.aborted, true, 'and aborts when the connection ends')
})

t.test('injectWS connections get the same slim request', async (t) => {
  const app = await build(t, { heartbeat: false, routes: [{ path: '/rt' }] })
  await app.ready()
  const ws = await app.injectWS('/rt', { headers: { authorization: `Bearer ${sign(app, 'erin')}`, 'x-trace': 'abc' } })
  const [conn] = hub(app).connections()
  t.ok(conn.request.raw instanceof UpgradeRequest)
  t.equal(conn.request.headers['x-trace'], 'abc')
  t.equal(conn.request.url, '/rt')
  ws.terminate()
})

t.test('shared header values: equal values come back as the kept copy; the table stays bounded', async (t) => {
  const shared = new SharedStrings()
  const first = ['Mozilla/5.0', 'x'].join(' ')
  const second = ['Mozilla/5.0', 'x'].join(' ')
  t.equal(shared.share(first), first)
  t.equal(shared.share(second), first, 'an equal value answers the first one kept')
  t.equal(shared.size, 1)
  const long = 'a'.repeat(600)
  t.equal(shared.share(long), long, 'a long value is passed through')
  t.equal(shared.size, 1, 'and not kept')
  for (let i = 0; i < 3000; i++) shared.share(`agent-${i}`)
  t.ok(shared.size <= 1024, `at most 1,024 values kept (${shared.size})`)
})

t.test('with @fastify/websocket registered by the app, the IncomingMessage is let go as well', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(realtime, { heartbeat: false, routes: [{ path: '/rt' }] })
  let message: WeakRef<object> | undefined
  app.addHook('onRequest', async (request) => { message = new WeakRef(request.raw) })
  const url = await listen(app)
  const client = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'fred')}` } })
  await collect(message)
  t.equal(message?.deref(), undefined, 'collected')
  client.send({ type: 'ping' })
  t.same(await client.type('pong'), { type: 'pong' }, 'the connection still answers')
  client.ws.close()
})

t.test('the slim raw: originalUrl under rewriteUrl, once() and events.once on close, a signal read after the close, a query string not shared', async (t) => {
  const app = await build(t, { heartbeat: false, routes: [{ path: '/rt' }] }, { rewriteUrl: (req) => req.url?.startsWith('/old') === true ? req.url.replace('/old', '/rt') : req.url ?? '/' })
  const url = await listen(app)
  const client = await connect(`${url}/old?x=1`, { headers: { authorization: `Bearer ${sign(app, 'gina')}` } })
  const [conn] = hub(app).connections()
  const raw = conn.request.raw
  t.equal(conn.request.url, '/rt?x=1', 'url: the rewritten one')
  t.equal(conn.request.originalUrl, '/old?x=1', 'originalUrl: the one asked for')
  t.equal(raw.httpVersionMajor, 1)
  t.equal(raw.httpVersionMinor, 1)
  t.equal(raw.connection, raw.socket)
  t.equal(raw.complete, true)
  t.equal(raw.aborted, false)
  t.equal(raw.destroyed, false)
  let onceCalls = 0
  raw.once('close', () => { onceCalls++ })
  const closedEvent = once(raw as any, 'close')
  const done = closed(client.ws)
  client.ws.close()
  await done
  await closedEvent
  t.pass('events.once(raw, "close") resolved')
  t.equal(onceCalls, 1, 'once() listener called once')
  t.equal(raw.destroyed, true)
  const late = conn.request.signal
  for (let i = 0; i < 20 && !late.aborted; i++) await sleep(5)
  t.equal(late.aborted, true, 'a signal first read after the close aborts too')
})

t.test('a URL with a query string is not shared (it may carry the token); a bare path is', async (t) => {
  const shared = new SharedStrings()
  const fake = (url: string): any => ({ headers: {}, url, method: 'GET', httpVersion: '1.1', socket: {} })
  new UpgradeRequest(fake('/rt?token=secret'), shared) // eslint-disable-line no-new
  t.equal(shared.size, 0, 'nothing kept for /rt?token=...')
  new UpgradeRequest(fake('/rt'), shared) // eslint-disable-line no-new
  t.equal(shared.size, 1, 'the bare path is')
})
