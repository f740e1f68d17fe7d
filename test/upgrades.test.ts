import t from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { SECRET, build, closed, connect, listen, sign, sleep, hub } from './helpers.js'
import realtime from '../lib/index.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

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
  t.equal(conn.request.headers.authorization?.startsWith('Bearer '), true, 'conn.request itself stays whole')
  const socket = (conn.ws as any)._socket
  t.equal(socket._httpMessage, null, 'the socket no longer points at the ServerResponse')
  t.equal(conn.ws.listenerCount('error'), 1, 'one error listener: the plugin\'s')
  for (let i = 0; i < 5 && refs.some((ref) => ref.deref() !== undefined); i++) {
    await sleep(10)
    gc()
  }
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
