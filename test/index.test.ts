import t from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import realtimeDefault, { realtime, memoryAdapter } from '../lib/index.js'
import { SECRET, closed, connect, listen, sign } from './helpers.js'

t.test('default and named export are the same fastify-plugin', async (t) => {
  t.equal(realtimeDefault, realtime)
  t.equal((realtime as any)[Symbol.for('skip-override')], true, 'not encapsulated: app.realtime is visible to the app')
  t.equal((realtime as any)[Symbol.for('plugin-meta')].name, 'fastify-realtime')
  t.equal((realtime as any)[Symbol.for('plugin-meta')].fastify, '5.x')
})

t.test('CommonJS require returns the plugin with .default and named exports', { skip: existsSync(new URL('../dist/cjs/main.js', import.meta.url)) ? false : 'run npm run build first' }, async (t) => {
  const require = createRequire(import.meta.url)
  const cjs = require('../dist/cjs/main.js')
  t.type(cjs, 'function')
  t.equal(cjs.default, cjs)
  t.equal(cjs.realtime, cjs)
  t.type(cjs.RealtimeError, 'function')
  t.equal(cjs.CloseCode.KICKED, 4403)
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(cjs, {})
  await app.ready()
  t.type(app.realtime.broadcast, 'function', 'the CJS build registers and decorates')
})

t.test('registers @fastify/websocket itself and decorates app.realtime', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(realtime, { maxPayload: 1234, perMessageDeflate: true })
  await app.ready()
  t.type(app.realtime.broadcast, 'function')
  t.equal((app as any).websocketServer.options.maxPayload, 1234)
  t.ok((app as any).websocketServer.options.perMessageDeflate, 'perMessageDeflate passed to ws')
  t.same(await app.realtime.members('none'), [])
})

t.test('a custom adapter must implement the Adapter interface', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await t.rejects(async () => { await app.register(realtime, { adapter: { publish () {} } as any }) }, { code: 'FST_REALTIME_INVALID_OPTION', message: /adapter/ })
})

t.test('memoryAdapter() is the default adapter kind', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(realtime, { adapter: memoryAdapter(), routes: [{ path: '/rt' }] })
  const url = await listen(app)
  const c = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'a')}` } })
  await c.request({ type: 'join', room: 'r', id: 1 })
  t.same(await app.realtime.members('r'), [{ id: app.realtime.connections()[0].id, sub: 'a' }])
  c.ws.close()
})

t.test('works when the app registered @fastify/websocket first', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(realtime, { routes: [{ path: '/rt' }], closeGracePeriod: 200 })
  app.get('/plain', { websocket: true }, (socket) => { socket.send(JSON.stringify({ type: 'plain' })) })
  const url = await listen(app)
  const token = sign(app, 'alice')
  const viaProtocol = await connect(`${url}/rt`, {}, ['bearer', token])
  t.equal(viaProtocol.ws.protocol, 'bearer', 'the bearer subprotocol is answered')
  viaProtocol.send({ type: 'ping' })
  t.same(await viaProtocol.type('pong'), { type: 'pong' })
  const plain = await connect(`${url}/plain`)
  t.equal(plain.ws.protocol, '', "the app's other routes keep their behaviour")
  const closing = closed(viaProtocol.ws)
  await app.close()
  t.equal((await closing).code, 1001, 'clients still see 1001 on shutdown')
})

t.test('app.close() works after registration failed (an adapter that cannot attach)', async (t) => {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  const adapter = { ...memoryAdapter(), connected: false, attach: async () => { throw new Error('no broker') }, publish () {}, publishToUser () {}, join () {}, leave () {}, members: async () => [], close: async () => {} }
  await t.rejects(async () => { await app.register(realtime, { adapter }) }, { message: 'no broker' })
  await t.resolves(app.close(), 'close does not throw')
})
